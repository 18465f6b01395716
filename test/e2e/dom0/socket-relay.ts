// Relays connections between a unix socket and TCP, byte for byte, in either direction:
//   node socket-relay.js LISTEN TARGET     (each: a socket path, or HOST:PORT)
// dom0's dropbear forwards TCP only, so scenarios reach the agent's unix socket from the host as
// host socket → relay → SSH TCP forward → relay in dom0 → /run/krata/agent.sock (test use only).
import { connect, createServer, type NetConnectOpts } from 'node:net';
import { rmSync } from 'node:fs';

function address(s: string): { path: string } | { host: string; port: number } {
  const m = /^([\d.]+):(\d+)$/.exec(s);
  return m ? { host: m[1]!, port: Number(m[2]) } : { path: s };
}

const [listen, target] = process.argv.slice(2);
if (!listen || !target) {
  console.error('usage: socket-relay LISTEN TARGET (a socket path or HOST:PORT each)');
  process.exit(2);
}
const from = address(listen);
const server = createServer((client) => {
  const upstream = connect(address(target) as NetConnectOpts);
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
});
if ('path' in from) rmSync(from.path, { force: true });
server.listen('path' in from ? from.path : { host: from.host, port: from.port }, () => console.log(`relaying ${listen} -> ${target}`));
