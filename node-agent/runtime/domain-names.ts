// The xenstore names of live domains, cached by domid and Xen's handle (uuid): a create's "is this name
// taken?" check reads only the names of domains it has not seen, not every domain's on every launch
// (which made the n-th launch do n xenstore reads). A domid whose handle changed is a new domain.
// Xen itself has no names and lets two domains share one; xl refuses that, and so does krata (console,
// logs and operators go by it), for any domain, not only krata's. Renaming a live domain (`xl rename`)
// is not seen until it is recreated; krata never renames.

/** The xenstore reads the cache needs. */
export interface NameReader {
  tryRead(path: string): Promise<string | undefined>;
}

export class DomainNames {
  private readonly known = new Map<number, { uuid: string; name: string | undefined }>();

  /** How many names are cached (for tests: stays the number of live domains). */
  get size(): number {
    return this.known.size;
  }

  /** A domain this process named itself. */
  remember(domid: number, uuid: string, name: string): void {
    this.known.set(domid, { uuid, name });
  }

  /** The live domain named `name`, if any; `live` is Xen's domain list (domid and handle). */
  async find(xs: NameReader, live: readonly { domid: number; uuid: string }[], name: string): Promise<number | undefined> {
    const ids = new Set(live.map((d) => d.domid));
    for (const id of this.known.keys()) if (!ids.has(id)) this.known.delete(id);
    await Promise.all(
      live.map(async ({ domid, uuid }) => {
        if (this.known.get(domid)?.uuid === uuid) return;
        const read = await xs.tryRead(`/local/domain/${domid}/name`).catch(() => undefined);
        // A domain whose name is not written yet (another toolstack is building it) is read again next time.
        if (read !== undefined) this.known.set(domid, { uuid, name: read });
        else this.known.delete(domid);
      }),
    );
    const holders = live.filter(({ domid, uuid }) => {
      const k = this.known.get(domid);
      return k?.uuid === uuid && k.name === name;
    });
    return holders[0]?.domid;
  }
}
