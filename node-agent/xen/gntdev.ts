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
    return this.mapGrants(domid, [ref], writable);
  }

  /**
   * Map pages `domid` granted as one contiguous range, in the order of `refs` (a ring of several
   * pages); unmap() releases the mapping and every grant.
   */
  mapGrants(domid: number, refs: readonly number[], writable = true): Mapping {
    if (refs.length === 0) throw new RangeError('no grant references to map');
    const what = refs.length === 1 ? `grant ${refs[0]}` : `${refs.length} grants (${refs[0]}...)`;
    // struct ioctl_gntdev_map_grant_ref with refs[count]: the kernel reads `count` {domid, ref} pairs.
    const refSize = gntdevMapGrantRef.fields.ref0_ref.offset + 4 - gntdevMapGrantRef.fields.ref0_domid.offset;
    const req = Buffer.alloc(gntdevMapGrantRef.size + refSize * (refs.length - 1));
    setField(req, gntdevMapGrantRef, 'count', refs.length);
    refs.forEach((ref, i) => {
      req.writeUInt32LE(domid, gntdevMapGrantRef.fields.ref0_domid.offset + i * refSize);
      req.writeUInt32LE(ref, gntdevMapGrantRef.fields.ref0_ref.offset + i * refSize);
    });
    sysIoctl(this.fd, GntdevIoctl.MAP_GRANT_REF, req, `map ${what} of domain ${domid}`);
    const index = req.readBigUInt64LE(gntdevMapGrantRef.fields.index.offset);
    const release = () => {
      const un = Buffer.alloc(gntdevUnmapGrantRef.size);
      setField(un, gntdevUnmapGrantRef, 'index', index);
      setField(un, gntdevUnmapGrantRef, 'count', refs.length);
      try {
        sysIoctl(this.fd, GntdevIoctl.UNMAP_GRANT_REF, un, `unmap ${what} of domain ${domid}`);
      } catch {
        // the domain is gone: its grants went with it
      }
    };
    let m: Mapping;
    try {
      m = sysMmap(PAGE_SIZE * refs.length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, this.fd, index);
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
