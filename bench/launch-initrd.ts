// The xl baselines' ramdisk (run in dom0): the guest initrd with a launch config archive after it, as
// krata's builder loads it (node-agent/xen/builder/initrd-parts.ts), so xl boots guest-init with the
// same initrd bytes and disks as the agent's guest.
//   node dist/bench/launch-initrd.js INITRD OUT
import { readFileSync, writeFileSync } from 'node:fs';
import { composeLaunchConfig, launchConfigArchive } from '../node-agent/guest/launch-config.js';
import { initrdParts } from '../node-agent/xen/builder/initrd-parts.js';

const [initrd, out] = process.argv.slice(2);
if (!initrd || !out) throw new Error('usage: launch-initrd.js INITRD OUT');
const config = composeLaunchConfig('bench', { tty: false, terminationGracePeriodSeconds: 30 }, { Cmd: ['sh', '-c', 'sleep 3600'] });
writeFileSync(out, Buffer.concat(initrdParts(readFileSync(initrd), launchConfigArchive(config))));
