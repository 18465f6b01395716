// A token bucket: `ratePerSecond` tokens a second up to `burst`, on a monotonic clock. It bounds what one
// guest may take of a shared resource: its console's drain rate, the flows kratanet opens for it.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new RangeError('a token bucket needs a positive rate and a burst of at least 1');
    this.tokens = burst;
    this.last = now();
  }

  /** Whole tokens available now. */
  available(): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.ratePerSecond) / 1000);
    this.last = t;
    return Math.floor(this.tokens);
  }

  take(n: number): void {
    this.available();
    this.tokens -= n;
  }

  /** Takes one token if there is one: whether there was. */
  tryTake(): boolean {
    if (this.available() < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until `n` (capped at the burst) tokens are available. */
  msUntil(n: number): number {
    const missing = Math.min(n, this.burst) - this.available();
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.ratePerSecond);
  }
}
