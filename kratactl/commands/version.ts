// kratactl version: this client's release and, unless --client, the node agent's (GET /v1/version),
// as kubectl version prints the client's and the server's.
import type { AgentVersion } from '../../contracts/agent-api/types.js';
import { GuestAPIVersion, GuestSetAPIVersion, XenHostAPIVersion } from '../../crds/generated/types.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';
import { packageVersion } from '../../lib/version.js';
import { AgentClient, AgentError, agentSocket } from '../agent-client.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';

export const VERSION_OPTIONS = {
  client: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  agent: { type: 'string' },
} as const satisfies FlagSpecs;

export const VERSION_HELP = `Print the version of kratactl and of the node agent it talks to.

Usage: kratactl version [--client] [-o json|yaml]

      --client          only kratactl's version (no agent is asked)
  -o, --output FORMAT   json or yaml
      --agent SOCKET    node agent socket (default $KRATA_AGENT_SOCKET or /run/krata/agent.sock)
`;

interface Version {
  version: string;
  apiVersions: string[];
  node: string;
}

const line = (program: string, v: Version) => `${program} ${v.version} (API ${v.apiVersions.join(', ')}, node ${v.node})\n`;

export async function version(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, VERSION_OPTIONS);
  if (positionals.length) throw new UsageError(`version takes no arguments (got ${positionals.join(' ')})`);
  const output = values.output;
  if (output !== undefined && output !== 'json' && output !== 'yaml')
    throw new UsageError(`--output must be json or yaml, not "${output}"`);
  const clientVersion: Version = {
    version: packageVersion(),
    apiVersions: [...new Set([GuestAPIVersion, XenHostAPIVersion, GuestSetAPIVersion])],
    node: process.version,
  };
  let serverVersion: Version | undefined;
  let failure: AgentError | undefined;
  if (!values.client) {
    try {
      const v: AgentVersion = await new AgentClient(agentSocket(values, io.env)).version();
      serverVersion = { version: v.agentVersion, apiVersions: v.apiVersions, node: v.node };
    } catch (err) {
      if (!(err instanceof AgentError)) throw err;
      failure = err;
    }
  }
  if (output === 'json') io.stdout.write(JSON.stringify({ clientVersion, ...(serverVersion && { serverVersion }) }, null, 2) + '\n');
  else if (output === 'yaml') {
    const { stringify } = await import('yaml');
    io.stdout.write(stringify({ clientVersion, ...(serverVersion && { serverVersion }) }, { version: '1.1', lineWidth: 0 }));
  } else io.stdout.write(line('kratactl', clientVersion) + (serverVersion ? line('krata-node-agent', serverVersion) : ''));
  if (!failure) return EXIT_OK;
  io.stderr.write(`error: ${failure.message}\n`);
  return EXIT_FAILED;
}
