// A host restart (a reboot, a power cut) ends every domain, though the store still says which Guests
// had one. The agent tells that apart from a domain that disappeared behind its back by the kernel's
// boot id, kept in <state>/boot-id: at start, a different boot id than the stored one means the host
// restarted since the agent last ran. Every Guest whose status named a domain is then settled here,
// before the controller runs, by its restartPolicy, with reason HostRestarted:
// - Always, OnFailure: Pending (restartCount + 1), started again at once: a restart the Guest did not
//   cause earns no CrashLoopBackOff, and the crash count starts afresh.
// - Never: Failed (Stalled=True), as Kubernetes ends a Pod with restartPolicy Never whose node rebooted.
// The new boot id is stored only after every Guest is settled, so an agent killed in between settles
// the rest at its next start.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { metaTime } from '../../crds/meta.js';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import type { Clock } from '../../lib/clock.js';
import type { GuestStore } from '../store/guest-store.js';
import type { EventRecorder } from './events.js';
import { clearResources, StatusWriter } from './status.js';

export const HOST_RESTARTED = 'HostRestarted';

/** The running kernel's boot id: a new random UUID at every boot. */
export function readBootId(file = '/proc/sys/kernel/random/boot_id'): string {
  const id = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f-]{8,64}$/i.test(id)) throw new Error(`${file}: not a boot id: ${JSON.stringify(id.slice(0, 80))}`);
  return id;
}

export interface HostRestart {
  /** Whether the host restarted since the agent last recorded its boot id (false on a first start). */
  restarted: boolean;
  previous?: string;
  /** The Guests whose domain the restart ended ("namespace/name"), and what became of them. */
  settled: { key: string; restart: boolean }[];
}

/** Compares `bootId` with the one stored in `stateDir` and settles the Guests a host restart ended (see above). */
export function settleHostRestart(stateDir: string, bootId: string, store: GuestStore, recorder: EventRecorder, clock: Clock): HostRestart {
  const file = join(stateDir, 'boot-id');
  const previous = existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
  const settled: HostRestart['settled'] = [];
  if (previous === bootId) return { restarted: false, previous, settled };
  // No stored id: a new state dir, or one from an agent that kept none; whether the host restarted
  // since is unknown, and the reconciler's usual rules apply (a domain gone is a failed exit).
  if (previous !== undefined) {
    const status = new StatusWriter(store, clock);
    for (const key of store.keys()) {
      const rec = store.get(key)!;
      const st = rec.guest.status;
      if (rec.guest.metadata.deletionTimestamp || st?.domid === undefined) continue;
      const domid = st.domid;
      const restart = rec.guest.spec.restartPolicy !== 'Never';
      const message = restart
        ? `the host restarted: domain ${domid} ended with it; starting the Guest again (restartPolicy ${rec.guest.spec.restartPolicy})`
        : `the host restarted: domain ${domid} ended with it; not restarted (restartPolicy Never)`;
      recorder.warning(key, HOST_RESTARTED, message);
      status.set(
        key,
        (s) => {
          delete s.domid;
          delete s.exitCode;
          delete s.signal;
          clearResources(s);
          if (s.probes?.lastKill) s.probes = { lastKill: s.probes.lastKill };
          else delete s.probes;
          s.finishTime = metaTime(clock.now());
          s.reason = HOST_RESTARTED;
          s.message = message;
          status.condition(rec, s, 'Ready', 'False', HOST_RESTARTED, message);
          if (restart) {
            s.phase = 'Pending';
            s.restartCount = (s.restartCount ?? 0) + 1;
            status.condition(rec, s, 'Reconciling', 'True', HOST_RESTARTED, message);
          } else {
            s.phase = 'Failed';
            status.condition(rec, s, 'Reconciling', 'False', HOST_RESTARTED, '');
            status.condition(rec, s, 'Stalled', 'True', HOST_RESTARTED, message);
          }
        },
        restart ? {} : rec.internal,
      );
      settled.push({ key, restart });
    }
  }
  writeFileAtomic(file, `${bootId}\n`, 0o600);
  return { restarted: previous !== undefined, ...(previous !== undefined ? { previous } : {}), settled };
}
