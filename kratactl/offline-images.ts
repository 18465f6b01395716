// kratactl image --offline: the image cache without a node agent, through `krata-node-agent image`, a
// child process (kratactl imports no other program; the agent's image-main.js, its image command
// without the daemon's modules, sits beside kratactl's folder in the package's dist/). The child
// takes the cache's lock, so it refuses while an agent runs; it answers in NDJSON (the node agent's
// image-command.ts) and its stderr (credential warnings) is passed on.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../lib/package-root.js';
import { StringDecoder } from 'node:string_decoder';
import type { PruneResult, PullEvent, StoredImage } from '../contracts/agent-api/types.js';
import { UsageError, type IO } from './io.js';

/** The node agent's image command in the package's dist/ (a path to run, not an import; found from the bundle too). */
export const AGENT_IMAGE_MAIN = join(repoRoot(), 'dist', 'node-agent', 'image-main.js');

/** The lock file's command of a running node agent (the agent's image/cache-lock.ts). */
const AGENT_COMMAND = 'krata-node-agent';

type Holder = { pid: number; command: string } | null;
type Line = { progress: PullEvent } | { result: unknown } | { error: string; usage?: true; holder?: Holder };

export class OfflineError extends Error {}

export class OfflineImages {
  /** `flags`: --state DIR and the registry flags, as krata-node-agent image takes them. */
  constructor(
    private readonly flags: string[],
    private readonly io: IO,
    private readonly agentMain = AGENT_IMAGE_MAIN,
  ) {}

  async pull(reference: string, onEvent: (e: PullEvent) => void): Promise<StoredImage> {
    return (await this.one(['pull', reference], onEvent)) as StoredImage;
  }

  async importImage(path: string, name: string | undefined, onEvent: (e: PullEvent) => void): Promise<StoredImage> {
    return (await this.one(['import', ...(name !== undefined ? ['--name', name] : []), path], onEvent)) as StoredImage;
  }

  async list(): Promise<StoredImage[]> {
    return (await this.one(['ls'])) as StoredImage[];
  }

  /** One outcome per image, in order. */
  async remove(refs: string[]): Promise<({ image: StoredImage } | { error: string })[]> {
    const lines = await this.run(['rm', ...refs]);
    return lines.map((l) => ('result' in l ? { image: l.result as StoredImage } : { error: (l as { error: string }).error }));
  }

  async prune(budgetBytes: number): Promise<PruneResult> {
    return (await this.one(['prune', '--budget', String(budgetBytes)])) as PruneResult;
  }

  /** The single result of an operation; its error (or a refusal) thrown. */
  private async one(args: string[], onEvent: (e: PullEvent) => void = () => {}): Promise<unknown> {
    const lines = await this.run(args, onEvent);
    const last = lines.at(-1);
    if (last && 'result' in last) return last.result;
    throw new OfflineError(last && 'error' in last ? last.error : 'krata-node-agent image gave no result');
  }

  /** Results and errors of `krata-node-agent image ARGS`; a usage error or a held lock is thrown. */
  private run(args: string[], onEvent: (e: PullEvent) => void = () => {}): Promise<Line[]> {
    if (!existsSync(this.agentMain)) {
      throw new OfflineError(
        `--offline runs krata-node-agent image, and there is no ${this.agentMain} (kratactl and krata-node-agent ship together)`,
      );
    }
    const [sub, ...rest] = args;
    const argv = [this.agentMain, sub!, ...this.flags, '--stop-on-eof', ...rest];
    const child = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stderr.on('data', (c: Buffer) => this.io.stderr.write(c));
    return new Promise((resolve, reject) => {
      const lines: Line[] = [];
      const decoder = new StringDecoder('utf8');
      let rest = '';
      let failure: Error | undefined;
      const take = (text: string) => {
        if (!text.trim() || failure) return;
        let line: Line;
        try {
          line = JSON.parse(text) as Line;
        } catch {
          failure = new OfflineError(`krata-node-agent image said something that is not JSON: ${text.slice(0, 200)}`);
          return;
        }
        if ('progress' in line) onEvent(line.progress);
        else if ('error' in line && line.usage) failure = new UsageError(line.error);
        else if ('error' in line && line.holder !== undefined) failure = new OfflineError(lockedMessage(line.error, line.holder));
        else lines.push(line);
      };
      child.stdout.on('data', (c: Buffer) => {
        rest += decoder.write(c);
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          take(rest.slice(0, nl));
          rest = rest.slice(nl + 1);
        }
      });
      child.on('error', (e) => reject(new OfflineError(`cannot run krata-node-agent image: ${e.message}`)));
      child.on('close', (code, signal) => {
        take(rest + decoder.end());
        if (failure) return reject(failure);
        if (code === 0 || lines.some((l) => 'error' in l)) return resolve(lines);
        reject(new OfflineError(`krata-node-agent image ${sub} ended with ${signal ?? `status ${code}`}`));
      });
    }).finally(() => child.stdin.end()) as Promise<Line[]>;
  }
}

function lockedMessage(message: string, holder: Holder): string {
  if (holder?.command === AGENT_COMMAND) return `${message}: the node agent runs; drop --offline and kratactl image goes through it`;
  return `${message}; --offline writes the cache only while nothing else does (drop --offline if the node agent runs)`;
}
