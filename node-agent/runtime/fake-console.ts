// A console for tests and the test-double hypervisor: output the test produces (`emit`), input it
// inspects (`input`, `waitForInput`).
import { InputQueue } from '../xen/index.js';
import type { Console } from './hypervisor.js';

/** A console whose output the test produces (`emit`) and whose input it inspects (`input`). */
export class FakeConsole implements Console {
  private buffer = Buffer.alloc(0);
  readonly listeners = new Set<(d: Buffer) => void>();
  readonly input: Buffer[] = [];
  private inputWaiters: (() => void)[] = [];

  history(): Buffer {
    return this.buffer;
  }
  onData(cb: (d: Buffer) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
  /** While true the "guest" reads no input: it queues as in the real session, up to the same bound. */
  blocked = false;
  readonly queue = new InputQueue();

  write(data: Buffer): boolean {
    this.queue.push(data);
    this.deliver();
    return !this.queue.isFull;
  }
  onDrain(cb: () => void): () => void {
    return this.queue.onDrain(cb);
  }
  /** The guest reads again: queued input arrives, writers waiting for a drain go on. */
  unblock(): void {
    this.blocked = false;
    this.deliver();
  }
  private deliver(): void {
    this.queue.flush((d) => {
      if (this.blocked) return 0;
      this.input.push(Buffer.from(d));
      return d.length;
    });
    for (const w of this.inputWaiters.splice(0)) w();
  }
  emit(text: string | Buffer): void {
    const d = Buffer.from(text);
    this.buffer = Buffer.concat([this.buffer, d]).subarray(-65536); // bounded, like the real history
    for (const l of [...this.listeners]) l(d);
  }
  inputText(): string {
    return Buffer.concat(this.input).toString('utf8');
  }
  /** Resolves once the input holds `text`. */
  async waitForInput(text: string): Promise<void> {
    while (!this.inputText().includes(text)) await new Promise<void>((r) => this.inputWaiters.push(r));
  }
}
