import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './package-root.js';

/** krata's release, from package.json: what `kratactl version`, the agent's heartbeat and the operator report. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
