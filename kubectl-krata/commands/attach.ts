// kubectl krata attach NAME: the terminal becomes the Guest's console through krata-api's attach websocket.
// Binary messages carry the console's bytes both ways (raw mode on a TTY, so Ctrl+C reaches the guest); the
// window size goes as a text message {"resize":{"rows":R,"cols":C}} at the start and on every SIGWINCH;
// Ctrl+] detaches here, without telling the guest (as kratactl attach).
import { createWebSocketStream } from 'ws';
import { WEBSOCKET_PROTOCOL } from '../../contracts/krata-api/subresources.js';
import { attachSession } from '../../lib/terminal.js';
import { onWindowResize, windowSize, type WindowSize } from '../../lib/window-size.js';
import { oneGuest, parseFlags } from '../args.js';
import { CommandError, EXIT_OK, type IO } from '../io.js';
import { KUBE_HELP, KUBE_OPTIONS, Kube, closeWatch } from '../kube.js';

export const ATTACH_HELP = `Attach the terminal to a running Guest's console.

Usage: kubectl krata attach [guest/]NAME [options]

Input goes to the guest and its output comes back, byte for byte. Press Ctrl+] to detach (the Guest
keeps running).

${KUBE_HELP}
`;

export async function attach(argv: string[], io: IO): Promise<number> {
  const { values, positionals } = parseFlags(argv, { ...KUBE_OPTIONS });
  const name = oneGuest(positionals, 'attach');
  const kube = Kube.connect(values, io.env);
  const size = windowSize(io.stdout);
  const query = size ? new URLSearchParams({ rows: String(size.rows), cols: String(size.cols) }).toString() : '';
  const ws = await kube.websocket(name, 'attach', WEBSOCKET_PROTOCOL.attach!, query);
  const closed = closeWatch(ws);
  const resize = (s: WindowSize) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ resize: { rows: s.rows, cols: s.cols } }));
  };
  if (size) resize(size);
  const stopSize = size ? onWindowResize(io.stdout, resize) : () => {};
  let how: 'detached' | 'ended';
  try {
    how = await attachSession(createWebSocketStream(ws), io, `${kube.namespace}/${name}`, (why) => new CommandError(why));
  } finally {
    stopSize();
  }
  const why = closed();
  if (how === 'ended' && why) throw new CommandError(why);
  return EXIT_OK;
}
