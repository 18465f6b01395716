// Recent Events per Guest, as `kubectl describe` shows them: the same reason and message again bump a
// count instead of adding a line; at most `perGuest` kept per Guest, and a host-wide list for what
// concerns no Guest (orphans removed). In memory: events are diagnostics, not state.
import type { Clock } from '../../lib/clock.js';
import type { GuestEvent } from '../../contracts/agent-api/types.js';

export class EventRecorder {
  private readonly byGuest = new Map<string, GuestEvent[]>();
  private readonly hostEvents: GuestEvent[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly perGuest = 50,
    private readonly sink: (e: GuestEvent) => void = () => undefined,
  ) {}

  normal(key: string, reason: string, message: string): void {
    this.record(key, 'Normal', reason, message);
  }

  warning(key: string, reason: string, message: string): void {
    this.record(key, 'Warning', reason, message);
  }

  host(reason: string, message: string): void {
    this.push(this.hostEvents, { namespace: '', name: '', type: 'Normal', reason, message });
  }

  forget(key: string): void {
    this.byGuest.delete(key);
  }

  list(namespace?: string, name?: string): GuestEvent[] {
    const all = [...this.byGuest.values()].flat().concat(this.hostEvents);
    return all
      .filter((e) => (namespace === undefined || e.namespace === namespace) && (name === undefined || e.name === name))
      .sort((a, b) => (a.lastTime < b.lastTime ? -1 : 1));
  }

  private record(key: string, type: GuestEvent['type'], reason: string, message: string): void {
    const slash = key.indexOf('/');
    const list = this.byGuest.get(key) ?? [];
    this.byGuest.set(key, list);
    this.push(list, { namespace: key.slice(0, slash), name: key.slice(slash + 1), type, reason, message });
  }

  private push(list: GuestEvent[], e: Omit<GuestEvent, 'count' | 'firstTime' | 'lastTime'>): void {
    const now = new Date(this.clock.now()).toISOString();
    const same = list.find((x) => x.reason === e.reason && x.message === e.message && x.type === e.type);
    if (same) {
      same.count++;
      same.lastTime = now;
      list.splice(list.indexOf(same), 1);
      list.push(same);
    } else {
      list.push({ ...e, count: 1, firstTime: now, lastTime: now });
      if (list.length > this.perGuest) list.shift();
    }
    this.sink(list.at(-1)!);
  }
}
