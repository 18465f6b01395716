// A directory as a tar stream, read as the user who runs kratactl: how an OCI layout directory reaches
// the node agent's import (the agent never opens a client's paths). Regular files and directories
// only (a symlink to a file is followed); names sorted, owner root, mtime 0.
import { createReadStream, lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { encodeHeader, TAR_END, tarPadding } from '../lib/tar.js';

export async function* tarDirectory(root: string): AsyncGenerator<Buffer> {
  yield* entries(root, '');
  yield TAR_END;
}

async function* entries(root: string, rel: string): AsyncGenerator<Buffer> {
  for (const name of readdirSync(join(root, rel)).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const full = join(root, path);
    const link = lstatSync(full);
    if (link.isDirectory()) {
      yield encodeHeader({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 });
      yield* entries(root, path);
      continue;
    }
    const st = link.isSymbolicLink() ? statSync(full) : link;
    if (!st.isFile()) throw new Error(`${full}: not a regular file or directory; an OCI layout holds only those`);
    yield encodeHeader({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: st.size });
    let sent = 0;
    for await (const chunk of createReadStream(full, { highWaterMark: 1 << 20 })) {
      sent += (chunk as Buffer).length;
      if (sent > st.size) break;
      yield chunk as Buffer;
    }
    if (sent !== st.size) throw new Error(`${full} changed size while it was read`);
    yield tarPadding(st.size);
  }
}
