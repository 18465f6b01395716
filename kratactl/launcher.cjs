#!/usr/bin/env node
// kratactl as installed (package.json's bin; scripts/bundle-kratactl.mjs copies this file beside the
// bundle): runs kratactl.bundle.cjs with V8's compiled code from kratactl.bundle.cache, so a start
// neither reads hundreds of files nor compiles what it runs. Both files are written at build time, in
// the install's own directory, and never at run time (KRATA_WRITE_CODE_CACHE is the build's).
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const vm = require('node:vm');

const file = join(__dirname, 'kratactl.bundle.cjs');
const cacheFile = join(__dirname, 'kratactl.bundle.cache');
let cachedData;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  // No cache (a build that made none): V8 compiles the bundle as it would any script.
}
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __krataUrl) {${readFileSync(file, 'utf8')}\n})`, {
  filename: file,
  cachedData,
});
if (process.env.KRATA_WRITE_CODE_CACHE === '1') process.once('exit', () => writeFileSync(cacheFile, script.createCachedData()));
const module_ = { exports: {} };
script.runInThisContext()(module_.exports, createRequire(file), module_, file, __dirname, pathToFileURL(file).href);
