// The guest memory the builder writes into, as page-sized views: in a real build the frames are mapped
// from the new domain with privcmd; in tests they are plain buffers with a made-up pfn → mfn map.
export interface GuestMemory {
  /** A writable 4096-byte view of the guest frame. */
  page(pfn: number): Buffer;
  /** The machine frame behind a guest frame. */
  mfn(pfn: number): bigint;
}
