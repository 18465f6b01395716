#!/usr/bin/env node
// krata-node-agent: the per-host daemon. Not built yet (issue 7); this entry point exists so the
// package's bin layout is fixed, and it says so instead of pretending to run.
import { packageVersion } from '../kratactl/commands/version.js';

const arg = process.argv[2];
if (arg === '--version') {
  console.log(`krata-node-agent ${packageVersion()}`);
} else {
  console.error('krata-node-agent: the node agent is not implemented yet (see issue 7, "The node agent")');
  process.exitCode = arg === '--help' || arg === '-h' ? 0 : 1;
}
