// kratactl launch [--attach] IMAGE [CMD...]: krata's own verb. A Guest built from flags as `run` builds
// it (run.ts), handed to the node agent; once its domain exists the UUID is printed on stdout (the ID
// `list`, `console` and `destroy` take), then with --attach the console is joined as `run` does.
import { resolve } from 'node:path';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, namespaceOf } from './common.js';
import { createGuest, followGuest, guestFromFlags } from './run.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const LAUNCH_HELP = `Launch an image as a new Guest and print its UUID (krata's launch).

Usage: kratactl launch [options] IMAGE [COMMAND [ARG...]]

Options go before IMAGE; every word after it is the guest's command (replacing the image's Cmd).

  -a, --attach           attach to the guest's console once it runs (Ctrl+] detaches)
  -k, --kernel PATH      a kernel on this host (spec.kernel.path; default: the node agent's)
  -r, --initrd PATH      an initrd on this host (spec.initrd.path; default: the node agent's)
  -c, --cpus N           vCPUs (default 1)
  -m, --mem SIZE         memory: MiB as a number (512) or a quantity (1Gi) (default 512Mi)
  -e, --env KEY=VALUE    an environment variable (repeatable)
      --name NAME        the Guest's name (default: from the image, e.g. alpine-x7k2p)
      --restart POLICY   Never (default), OnFailure or Always
${AGENT_HELP}

The UUID (status.uuid, the Xen domain's handle) is printed once the domain exists; every command that
takes a guest NAME takes it too.
`;

/** The flags of `kratactl launch` (completion reads them too). */
export const LAUNCH_OPTIONS = {
  ...AGENT_OPTIONS,
  attach: { type: 'boolean', short: 'a' },
  kernel: { type: 'string', short: 'k' },
  initrd: { type: 'string', short: 'r' },
  cpus: { type: 'string', short: 'c' },
  mem: { type: 'string', short: 'm' },
  env: { type: 'string', short: 'e', multiple: true },
  name: { type: 'string' },
  restart: { type: 'string' },
} as const satisfies FlagSpecs;

export async function launch(argv: string[], io: IO): Promise<number> {
  // launch's options come before IMAGE and every word after it is the guest's command, as krata's
  // launch took them (`launch alpine ls -l` runs `ls -l`).
  const { values, positionals } = parseFlags(argv, LAUNCH_OPTIONS, { interspersed: false });
  const [image, ...command] = positionals;
  if (!image) throw new UsageError('launch needs an IMAGE');
  const namespace = namespaceOf(values);
  // krata's launch took "auto" for the node's default kernel and initrd, and memory in MiB.
  const path = (p: string | undefined) => (p === undefined || p === 'auto' ? undefined : resolve(p));
  const memory = values.mem !== undefined && /^\d+$/.test(values.mem) ? `${values.mem}Mi` : values.mem;
  const built = guestFromFlags(
    { ...values, memory, kernel: path(values.kernel), initrd: path(values.initrd), tty: values.attach },
    image,
    command,
    namespace,
  );
  const client = agentClient(values, io);
  const name = await createGuest(client, built, namespace, io);
  if (name === undefined) return EXIT_FAILED;
  let printed = false;
  const status = await followGuest(client, namespace, name, io, {
    attach: values.attach === true,
    onRunning: (g) => {
      if (!g.status?.uuid) return;
      io.stdout.write(`${g.status.uuid}\n`);
      printed = true;
    },
  });
  if (!printed && status === EXIT_OK)
    io.stderr.write(`error: guest ${namespace}/${name} has no UUID in its status (an older node agent?)\n`);
  return printed ? status : EXIT_FAILED;
}
