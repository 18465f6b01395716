#!/usr/bin/env node
// kubectl-krata: on PATH, kubectl runs it for `kubectl krata ...` (a kubectl plugin).
import { run } from './cli.js';

process.exitCode = await run(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
