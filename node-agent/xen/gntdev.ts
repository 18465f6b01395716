// /dev/xen/gntdev: map pages another domain granted us (a backend's view of a frontend's rings). One
// device file serves every mapping; each map is an ioctl that returns an offset, then an mmap at it.
import { GntdevIoctl, PAGE_SIZE, gntdevMapGrantRef, gntdevUnmapGrantRef } from './abi.js';
import { setField } from '../../lib/c-layout.js';
import {
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  sysClose,
  sysIoctl,
  sysMmap,
  sysOpen,
  type Mapping,
} from '../../lib/libc.js';

export const GNTDEV_PATH = '/dev/xen/gntdev';

export class GrantMapper {
  private constructor(private readonly fd: number) {}

  static open(path = GNTDEV_PATH): GrantMapper {
    return new GrantMapper(sysOpen(path, O_RDWR | O_CLOEXEC));
  }

  /** Map one granted page of `domid`; unmap() releases both the mapping and the grant. */
  mapGrant(domid: number, ref: number, writable = true): Mapping {
    const req = Buffer.alloc(gntdevMapGrantRef.size);
    setField(req, gntdevMapGrantRef, 'count', 1);
    setField(req, gntdevMapGrantRef, 'ref0_domid', domid);
    setField(req, gntdevMapGrantRef, 'ref0_ref', ref);
    sysIoctl(this.fd, GntdevIoctl.MAP_GRANT_REF, req, `map grant ${ref} of domain ${domid}`);
    const index = req.readBigUInt64LE(gntdevMapGrantRef.fields.index.offset);
    const release = () => {
      const un = Buffer.alloc(gntdevUnmapGrantRef.size);
      setField(un, gntdevUnmapGrantRef, 'index', index);
      setField(un, gntdevUnmapGrantRef, 'count', 1);
      try {
        sysIoctl(this.fd, GntdevIoctl.UNMAP_GRANT_REF, un, `unmap grant ${ref} of domain ${domid}`);
      } catch {
        // the domain is gone: its grants went with it
      }
    };
    let m: Mapping;
    try {
      m = sysMmap(PAGE_SIZE, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, this.fd, index);
    } catch (e) {
      release();
      throw e;
    }
    return { ...m, unmap: () => (m.unmap(), release()) };
  }

  close(): void {
    sysClose(this.fd);
  }
}
