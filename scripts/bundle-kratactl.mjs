// `npm run build` (after tsc): kratactl as a few ESM files, dist/kratactl/kratactl.mjs and the chunks its
// commands load on demand, so a start reads a handful of files instead of hundreds (dist/ and node_modules/).
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/kratactl/chunks', { recursive: true, force: true }); // chunk names carry hashes: no stale ones

const result = await build({
  entryPoints: { kratactl: 'dist/kratactl/main.js' },
  outdir: 'dist/kratactl',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
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
const inputs = Object.keys(result.metafile.inputs).length;
const outputs = Object.keys(result.metafile.outputs).filter((f) => !f.endsWith('.map'));
console.log(`bundled kratactl: ${inputs} modules into ${outputs.length} files`);
