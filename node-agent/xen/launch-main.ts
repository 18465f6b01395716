#!/usr/bin/env node
// Start or destroy a PV domain with krata's own builder, without the node agent: the e2e suite uses
// it, and it is the quickest way to check a kernel boots on a host.
//   launch-main.js --name NAME --kernel PATH [--initrd PATH] [--memory MiB] [--vcpus N] [--cmdline STR]
//                  [--console xenconsoled|krata]
//   launch-main.js --destroy DOMID
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DomainBuilder } from './builder/build.js';
import { XenControl } from './control.js';
import { NotOnXenError, Privcmd } from './privcmd.js';
import { XenstoreClient } from './xenstore/client.js';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    memory: { type: 'string', default: '128' },
    vcpus: { type: 'string', default: '1' },
    cmdline: { type: 'string', default: 'console=hvc0' },
    console: { type: 'string', default: 'krata' },
    destroy: { type: 'string' },
  },
});

let privcmd: Privcmd | undefined;
let xs: XenstoreClient | undefined;
try {
  privcmd = Privcmd.open();
  const xen = new XenControl(privcmd);
  xs = await XenstoreClient.connect();
  const builder = new DomainBuilder(privcmd, xen, xs);
  if (values.destroy !== undefined) {
    const domid = Number(values.destroy);
    const uuid = await xs.tryRead(`/local/domain/${domid}/vm`).then((vm) => vm?.replace('/vm/', ''));
    await builder.destroy(domid, uuid);
    console.log(JSON.stringify({ destroyed: domid }));
  } else {
    if (!values.name || !values.kernel) throw new Error('--name and --kernel are required');
    const t0 = performance.now();
    const d = await builder.launch({
      name: values.name,
      kernel: readFileSync(values.kernel),
      initrd: values.initrd ? readFileSync(values.initrd) : undefined,
      memoryMiB: Number(values.memory),
      vcpus: Number(values.vcpus),
      cmdline: values.cmdline!,
      consoleBackend: values.console === 'xenconsoled' ? 'xenconsoled' : 'krata',
    });
    console.log(JSON.stringify({ domid: d.domid, uuid: d.uuid, ms: Math.round(performance.now() - t0) }));
  }
} catch (e) {
  process.stderr.write(`${e instanceof NotOnXenError ? '' : 'launch failed: '}${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  xs?.close();
  privcmd?.close();
}
