// `npm run build` (after tsc): kratactl as one ESM file, dist/kratactl/kratactl.mjs, so a start reads one
// file instead of hundreds (dist/ and node_modules/). Each command's modules stay behind a lazy
// initializer (esbuild's translation of cli.ts's dynamic imports), so a command evaluates only its own.
// One file rather than a chunk per command: in dom0 of the QEMU Xen host every file kratactl opens
// crosses a 9p share, and there a file costs far more than the parse of the others' code.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/kratactl/chunks', { recursive: true, force: true });
const result = await build({
  entryPoints: ['dist/kratactl/main.js'],
  outfile: 'dist/kratactl/kratactl.mjs',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // CommonJS dependencies (yaml's, ajv's runtime) call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __krataRequire } from 'node:module'; const require = __krataRequire(import.meta.url);" },
  external: ['koffi'],
  metafile: true,
  // Less to read and parse at each start; names are kept, so a stack trace still reads.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
console.log(`bundled kratactl: ${Object.keys(result.metafile.inputs).length} modules into dist/kratactl/kratactl.mjs`);
