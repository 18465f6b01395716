// Run inside dom0: krata's initrd for the xenhost's stock guest kernel, from guest-init and the
// modules build.sh puts in /opt/xenhost/guest/krata-modules (in load order).
//   node dist/test/e2e/dom0/krata-initrd.js GUEST_INIT OUT
import { readFileSync, writeFileSync } from 'node:fs';
import { buildInitrd, guestInitrdEntries } from '../../../node-agent/guest/initrd.js';

const [initPath, out] = process.argv.slice(2);
if (!initPath || !out) throw new Error('usage: krata-initrd.js GUEST_INIT OUT');
const dir = '/opt/xenhost/guest/krata-modules';
const modules = readFileSync(`${dir}/order`, 'utf8').split('\n').filter(Boolean);
writeFileSync(
  out,
  buildInitrd(
    guestInitrdEntries(
      readFileSync(initPath),
      modules.map((m) => ({ name: m, data: readFileSync(`${dir}/${m}`) })),
    ),
  ),
);
console.log(JSON.stringify({ modules: modules.length }));
