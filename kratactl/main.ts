#!/usr/bin/env node
import module from 'node:module';
import { run } from './cli.js';

// Node 22.1+ keeps V8's compiled code of the modules loaded from here on (the commands, the validators)
// between runs; Node 20 has no such cache and goes on without it.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

// No top-level await: the same code runs bundled as a classic script (scripts/bundle-kratactl.mjs).
void run(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }).then((code) => {
  process.exitCode = code;
});
