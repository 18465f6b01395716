// kratactl rollout status gs/NAME: waits until a GuestSet's rollout is complete, as kubectl's rollout
// status does for a Deployment: the status is for the current generation and every replica is updated,
// ready and available with no old Guest left. Fails on Stalled=True or when --timeout passes.
import type { GuestSet } from '../../crds/generated/types.js';
import { EXIT_FAILED, EXIT_OK, UsageError, type IO } from '../io.js';
import { AGENT_HELP, AGENT_OPTIONS, agentClient, agentFailure, namespaceOf, onInterrupt } from './common.js';
import { setName } from './scale.js';
import { parseFlags, type FlagSpecs } from '../../lib/cli-flags.js';

export const ROLLOUT_HELP = `Follow a GuestSet's rollout.

Usage: kratactl rollout status guestset|gs NAME [options]
       kratactl rollout status gs/NAME [options]

      --timeout DURATION  give up after this long (such as 90s, 5m; default 10m; 0 waits forever)
  -w, --watch             keep waiting until the rollout is done (the default); --watch=false prints the state once
${AGENT_HELP}
`;

const POLL_MS = 500;

/** A duration as kubectl takes it: 30s, 5m, 1h, 1m30s, or plain seconds. */
export function parseDuration(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(s);
  if (!m || s === '') return undefined;
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

/** Where a rollout is: done, failed (Stalled) or a line saying what it waits for. */
export function rolloutState(set: GuestSet): { done: boolean; failed?: string; message: string } {
  const name = `guestset "${set.metadata.name}"`;
  const st = set.status ?? {};
  const stalled = st.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
  if (stalled) return { done: false, failed: `${name} is stalled (${stalled.reason}): ${stalled.message}`, message: '' };
  const want = set.spec.replicas;
  if ((st.observedGeneration ?? 0) < (set.metadata.generation ?? 1))
    return { done: false, message: `Waiting for ${name} spec update to be observed...` };
  const updated = st.updatedReplicas ?? 0;
  const replicas = st.replicas ?? 0;
  const available = st.availableReplicas ?? 0;
  if (updated < want)
    return { done: false, message: `Waiting for ${name} rollout to finish: ${updated} out of ${want} new replicas have been updated...` };
  if (replicas > updated)
    return { done: false, message: `Waiting for ${name} rollout to finish: ${replicas - updated} old replicas are pending termination...` };
  if (available < updated || (st.readyReplicas ?? 0) < updated)
    return { done: false, message: `Waiting for ${name} rollout to finish: ${available} of ${updated} updated replicas are available...` };
  return { done: true, message: `${name} successfully rolled out` };
}

/** The flags of `kratactl rollout` (completion reads them too). */
export const ROLLOUT_OPTIONS = {
  ...AGENT_OPTIONS,
  timeout: { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
} as const satisfies FlagSpecs;

export async function rollout(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, ROLLOUT_OPTIONS);
  const [sub, ...rest] = positionals;
  if (sub !== 'status') throw new UsageError(`rollout takes the subcommand status${sub === undefined ? '' : `, not "${sub}"`}`);
  const name = setName(rest, 'rollout status');
  const timeoutMs = values.timeout === undefined ? 600_000 : parseDuration(values.timeout);
  if (timeoutMs === undefined) throw new UsageError(`--timeout takes a duration such as 90s or 5m, not "${values.timeout}"`);
  const namespace = namespaceOf(values);
  const client = agentClient(values, io);
  const deadline = timeoutMs === 0 ? Infinity : Date.now() + timeoutMs;
  let interrupted = false;
  const stopSignals = onInterrupt(() => (interrupted = true));
  let last = '';
  try {
    for (;;) {
      const state = rolloutState(await client.getGuestSet(namespace, name));
      if (state.failed) {
        io.stderr.write(`error: ${state.failed}\n`);
        return EXIT_FAILED;
      }
      if (state.message !== last) io.stdout.write(state.message + '\n');
      last = state.message;
      if (state.done || values.watch === false) return EXIT_OK;
      if (interrupted) return EXIT_FAILED;
      if (Date.now() >= deadline) {
        io.stderr.write(`error: timed out waiting for the rollout of guestset "${name}"\n`);
        return EXIT_FAILED;
      }
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
    }
  } catch (err) {
    return agentFailure(io, err);
  } finally {
    stopSignals();
  }
}
