// Run inside a Xen dom0: record xenstoreScenario against the real xenstored and print the fixture
// (JSON) on stdout. The e2e runner stores it as test/fixtures/xenstore/session.json.
import { XenstoreClient } from '../../node-agent/xen/xenstore/client.js';
import { deviceTransport, socketTransport } from '../../node-agent/xen/xenstore/transport.js';
import { recordingTransport, type Frame } from './replay.js';
import { xenstoreScenario } from './scenario.js';

// A path under /dev/ (the xenbus device) uses the device transport; anything else is xenstored's socket.
const path = process.argv[2] ?? '/var/run/xenstored/socket';
const connect = () => (path.startsWith('/dev/') ? deviceTransport(path) : socketTransport(path));
const logA: Frame[] = [];
const logB: Frame[] = [];
const a = new XenstoreClient(recordingTransport(await connect(), logA));
const b = new XenstoreClient(recordingTransport(await connect(), logB));
const transcript = await xenstoreScenario(a, b);
a.close();
b.close();
process.stdout.write(
  JSON.stringify({ recordedWith: `xenstored (C) 4.17, dom0 under QEMU, through ${path}`, a: logA, b: logB, transcript }, null, 1) + '\n',
);
