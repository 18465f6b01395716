#!/usr/bin/env node
// krata-operator: the Kubernetes controller for Guests and XenHosts. Not built yet (issue 8); this entry
// point exists so the package's bin layout is fixed, and it says so instead of pretending to run.
import { packageVersion } from '../kratactl/commands/version.js';

const arg = process.argv[2];
if (arg === '--version') {
  console.log(`krata-operator ${packageVersion()}`);
} else {
  console.error('krata-operator: the operator is not implemented yet (see issue 8, "The operator and cluster mode")');
  process.exitCode = arg === '--help' || arg === '-h' ? 0 : 1;
}
