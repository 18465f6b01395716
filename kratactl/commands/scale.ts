// kratactl scale gs NAME --replicas N: a GuestSet's scale subresource, as kubectl scale.
import { MAX_REPLICAS } from '../../contracts/agent-api/types.js';
import { EXIT_OK, UsageError, type IO } from '../io.js';
import { objectName } from '../output.js';
import {
  AGENT_HELP,
  AGENT_OPTIONS,
  agentClient,
  agentFailure,
  checkGuestName,
  guestSetRef,
  isGuestSetKind,
  namespaceOf,
} from './common.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const SCALE_HELP = `Set how many Guests a GuestSet runs.

Usage: kratactl scale guestset|gs NAME --replicas N [options]
       kratactl scale gs/NAME --replicas N [options]

      --replicas N      the new spec.replicas (0 to ${MAX_REPLICAS})
${AGENT_HELP}
`;

/** The flags of `kratactl scale` (completion reads them too). */
export const SCALE_OPTIONS = { ...AGENT_OPTIONS, replicas: { type: 'string' } } as const satisfies FlagSpecs;

export async function scale(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, SCALE_OPTIONS);
  const name = setName(positionals, 'scale');
  const replicas = values.replicas;
  if (replicas === undefined) throw new UsageError('scale needs --replicas N');
  if (!/^\d{1,4}$/.test(replicas) || Number(replicas) > MAX_REPLICAS)
    throw new UsageError(`--replicas takes a whole number from 0 to ${MAX_REPLICAS}, not "${replicas}"`);
  const namespace = namespaceOf(values);
  try {
    const set = await agentClient(values, io).scaleGuestSet(namespace, name, Number(replicas));
    io.stdout.write(`${objectName(set)} scaled\n`);
    return EXIT_OK;
  } catch (err) {
    return agentFailure(io, err);
  }
}

/** The set a command names: `gs NAME` or `gs/NAME`. */
export function setName(positionals: string[], command: string): string {
  const [first, second, ...rest] = positionals;
  const ref = first === undefined ? undefined : guestSetRef(first);
  if (ref !== undefined && second === undefined) return checkGuestName(ref);
  if (first !== undefined && isGuestSetKind(first) && second !== undefined && rest.length === 0) return checkGuestName(second);
  throw new UsageError(`${command} needs a GuestSet: kratactl ${command} gs NAME (or gs/NAME)`);
}
