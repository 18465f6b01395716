// `npm run build` (after tsc): kratactl as one file plus V8's compiled code for it, so a start reads
// three files instead of hundreds (dist/ and node_modules/) and compiles almost nothing.
// - dist/kratactl/kratactl.bundle.cjs: every module kratactl runs, bundled by esbuild. Each command's
//   modules stay behind a lazy initializer (esbuild's translation of cli.ts's dynamic imports), so a
//   command evaluates only its own. CommonJS, because only a classic script can be given V8's code
//   cache with Node's stable API (vm.Script's cachedData); ES modules cannot on Node 20.
// - dist/kratactl/kratactl.bundle.cache: that code cache, made here by running `apply --dry-run` of the
//   examples once (the cache then holds the functions that run compiled: the CLI, the flag parser,
//   the validators, yaml). A cache V8 rejects (another Node) is ignored: the bundle compiles as usual.
// - dist/kratactl/kratactl.cjs (package.json's bin): the launcher that runs the bundle with the cache.
// One file rather than a chunk per command: in dom0 of the QEMU Xen host every file kratactl opens
// may cross a 9p share, and there a file costs more than the parse of the others' code.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const out = 'dist/kratactl';
rmSync(`${out}/chunks`, { recursive: true, force: true });
rmSync(`${out}/kratactl.bundle.cache`, { force: true });
const result = await build({
  entryPoints: [`${out}/main.js`],
  outfile: `${out}/kratactl.bundle.cjs`,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // lib/package-root.ts finds the tree from its own URL: the bundle's (the launcher passes it).
  define: { 'import.meta.url': '__krataUrl' },
  external: ['koffi'],
  metafile: true,
  // Less to read and parse at each start; names are kept, so a stack trace still reads.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
// main.ts's #! line would be a syntax error inside the launcher's function wrapper: kept as a comment.
const bundled = readFileSync(`${out}/kratactl.bundle.cjs`, 'utf8');
if (bundled.startsWith('#!')) writeFileSync(`${out}/kratactl.bundle.cjs`, '//' + bundled);
copyFileSync('kratactl/launcher.cjs', `${out}/kratactl.cjs`);
const train = spawnSync(process.execPath, [`${out}/kratactl.cjs`, 'apply', '--dry-run', '-f', 'manifests/examples/'], {
  env: { ...process.env, KRATA_WRITE_CODE_CACHE: '1' },
  encoding: 'utf8',
});
if (train.status !== 0) throw new Error(`making kratactl's code cache failed (${train.status}): ${train.stderr}`);
console.log(`bundled kratactl: ${Object.keys(result.metafile.inputs).length} modules into ${out}/kratactl.bundle.cjs, with its code cache`);
