// A probe attempt's end, fired by its worker at timeoutSeconds: a plain callback list, because an
// AbortSignal's EventTarget listeners cost more CPU than a tcpSocket probe itself (bench probes).
export class Deadline {
  private callbacks: (() => void)[] = [];
  private fired = false;

  get passed(): boolean {
    return this.fired;
  }

  /** Runs `cb` when the deadline passes (at once if it has); returns the function that forgets it. */
  onPass(cb: () => void): () => void {
    if (this.fired) {
      cb();
      return () => undefined;
    }
    this.callbacks.push(cb);
    return () => {
      const i = this.callbacks.indexOf(cb);
      if (i >= 0) this.callbacks.splice(i, 1);
    };
  }

  pass(): void {
    if (this.fired) return;
    this.fired = true;
    for (const cb of this.callbacks.splice(0)) cb();
  }
}
