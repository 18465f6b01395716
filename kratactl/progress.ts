// Progress of an image pull: one bar per layer on a terminal (redrawn in place, at most 10 times a
// second), or one line per step when the output is a file or a pipe.
import type { Writable } from 'node:stream';
import type { PullEvent } from '../contracts/agent-api/types.js';

interface Layer {
  digest: string;
  size: number;
  downloaded: number;
  unpacked: number;
  state: 'waiting' | 'downloading' | 'downloaded' | 'unpacking' | 'done';
}

const WIDTH = 30;

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

export function bar(fraction: number, width = WIDTH): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.floor(f * width);
  return `[${'='.repeat(full)}${full < width ? '>' : ''}${' '.repeat(Math.max(0, width - full - 1))}]`;
}

export class ProgressBars {
  private layers: Layer[] = [];
  private drawn = 0;
  private last = 0;
  private readonly tty: boolean;

  constructor(private readonly out: Writable & { isTTY?: boolean }) {
    this.tty = !!out.isTTY;
  }

  onEvent(e: PullEvent): void {
    const layer = 'layer' in e ? this.layers.find((l) => l.digest === e.layer) : undefined;
    switch (e.kind) {
      case 'resolved':
        this.layers = e.layers.map((l) => ({ digest: l.digest, size: l.size, downloaded: 0, unpacked: 0, state: 'waiting' }));
        this.line(`${e.ref}: ${e.digest}, ${e.layers.length} layers, ${mb(e.layers.reduce((s, l) => s + l.size, 0))}`);
        break;
      case 'cached':
        this.line(`${e.ref}: ${e.digest} is cached`);
        break;
      case 'download':
        if (layer) Object.assign(layer, { downloaded: e.bytes, state: 'downloading' });
        break;
      case 'downloaded':
        if (layer) {
          Object.assign(layer, { downloaded: layer.size, state: layer.state === 'done' ? 'done' : 'downloaded' });
          if (!this.tty) this.line(`${short(layer.digest)}: downloaded ${mb(layer.size)}`);
        }
        break;
      case 'unpack':
        if (layer) Object.assign(layer, { unpacked: e.bytes, state: 'unpacking' });
        break;
      case 'unpacked':
        if (layer) {
          Object.assign(layer, { unpacked: layer.size, state: 'done' });
          if (!this.tty) this.line(`${short(layer.digest)}: unpacked`);
        }
        break;
      case 'done':
        break;
    }
    if (this.tty) this.draw(e.kind === 'unpacked' || e.kind === 'downloaded');
  }

  private line(text: string): void {
    if (this.tty) this.clear();
    this.out.write(text + '\n');
  }

  private clear(): void {
    if (this.drawn) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    this.clear();
    const lines = this.layers.map((l) => {
      const [done, label] =
        l.state === 'unpacking' || l.state === 'done'
          ? [l.unpacked, l.state === 'done' ? 'unpacked' : 'unpacking']
          : [l.downloaded, l.state];
      return `${short(l.digest)} ${bar(l.size ? done / l.size : 1)} ${mb(done).padStart(9)} / ${mb(l.size).padEnd(9)} ${label}`;
    });
    if (lines.length) this.out.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }

  /** Leaves the final state on screen. */
  finish(): void {
    if (this.tty && this.layers.length) this.draw(true);
  }
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
