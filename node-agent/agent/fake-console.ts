// A console for tests and the test-double hypervisor: output the test produces (`emit`), input it
// inspects (`input`, `waitForInput`).
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
  write(data: Buffer): void {
    this.input.push(Buffer.from(data));
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
