#!/usr/bin/env node
// `node dist/node-agent/xen/probe-main.js`: what krata's own Xen layer sees on this host, as JSON.
// Used by the e2e suite to compare with xl, and handy when bringing up a new host.
import { XenControl } from './control.js';
import { NotOnXenError, Privcmd } from './privcmd.js';

try {
  const privcmd = Privcmd.open();
  const xen = new XenControl(privcmd);
  const report = {
    version: xen.version(),
    capabilities: xen.capabilities(),
    interfaceVersions: xen.interfaceVersions,
    host: xen.host(),
    domains: xen.listDomains(),
  };
  process.stdout.write(JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  privcmd.close();
} catch (e) {
  if (!(e instanceof NotOnXenError)) throw e;
  process.stderr.write(`${e.message}\n`);
  process.exitCode = 1;
}
