import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../crds/codegen/paths.js';
import { KINDS } from '../../crds/validate.js';
import { EXIT_OK, type IO } from '../io.js';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export async function version(_argv: string[], io: IO): Promise<number> {
  const apis = [...new Set([...KINDS.values()].map((k) => k.apiVersion))].join(', ');
  io.stdout.write(`kratactl ${packageVersion()} (API ${apis}, node ${process.version})\n`);
  return EXIT_OK;
}
