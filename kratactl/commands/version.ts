import { KINDS } from '../../crds/validate.js';
import { packageVersion } from '../../lib/version.js';
import { EXIT_OK, type IO } from '../io.js';

export async function version(_argv: string[], io: IO): Promise<number> {
  const apis = [...new Set([...KINDS.values()].map((k) => k.apiVersion))].join(', ');
  io.stdout.write(`kratactl ${packageVersion()} (API ${apis}, node ${process.version})\n`);
  return EXIT_OK;
}
