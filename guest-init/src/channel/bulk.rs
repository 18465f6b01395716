//! The bulk ring (PROTOCOL.md, "Bulk ring (version 2)"): pages guest-init grants to dom0 itself
//! with /dev/xen/gntalloc, and an event channel it allocates unbound for dom0 with /dev/xen/evtchn.
//! The memory is a header page (four u32 indexes: in_cons, in_prod, out_cons, out_prod), then the
//! "in" pages (host→guest), then the "out" pages (guest→host); the grant references go into
//! BULK_OFFER in that order.
//!
//! `Ring` is the arithmetic on that memory, whoever provides it; `Backend` is what Xen provides
//! (the mapping and the event channel), so tests run the same ring over plain memory and eventfds.
//! Our own indexes are kept here and only stored into the header: the host can scribble on the
//! page, but it only ever moves our view of its own indexes, and those are clamped to a ring's size.

use super::outbox::Sink;
use serde_json::{json, Value};
use std::fs::File;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

pub const PAGE: usize = 4096;
/// 64 KiB each way: the console's ring is 1 KiB in and 2 KiB out.
pub const IN_PAGES: u32 = 16;
pub const OUT_PAGES: u32 = 16;
const MAX_PAGES: u32 = 32;

const GNTALLOC: &str = "/dev/xen/gntalloc";
const EVTCHN: &str = "/dev/xen/evtchn";
/// _IOC(_IOC_NONE, 'G', 5, sizeof(struct ioctl_gntalloc_alloc_gref)), xen/gntalloc.h.
const IOCTL_GNTALLOC_ALLOC_GREF: libc::c_ulong = 0x0018_4705;
const GNTALLOC_FLAG_WRITABLE: u16 = 1;
/// The head of struct ioctl_gntalloc_alloc_gref: domid, flags, count, index; gref_ids follow.
const ALLOC_HEAD: usize = 16;
/// sizeof(struct ioctl_gntalloc_alloc_gref), which the kernel reads whole.
const ALLOC_STRUCT: usize = 24;
/// _IOC(_IOC_NONE, 'E', 2 and 4, 4), xen/evtchn.h.
const IOCTL_EVTCHN_BIND_UNBOUND_PORT: libc::c_ulong = 0x0004_4502;
const IOCTL_EVTCHN_NOTIFY: libc::c_ulong = 0x0004_4504;

/// One direction of the ring: byte offsets of its indexes and data in the memory, and its size.
#[derive(Clone, Copy)]
pub struct Half {
    cons: usize,
    prod: usize,
    data: usize,
    size: usize,
}

/// The ring arithmetic over shared memory: free-running u32 indexes, bytes at `index & (size - 1)`,
/// the other side's index loaded (Acquire) before the bytes it covers, ours stored (Release) after.
pub struct Ring {
    base: *mut u8,
    in_size: usize,
    out_size: usize,
}

impl Ring {
    /// # Safety
    /// `base` is page-aligned and valid for reads and writes of `PAGE + in_size + out_size` bytes
    /// for as long as the Ring is used; both sizes are powers of two.
    pub unsafe fn new(base: *mut u8, in_size: usize, out_size: usize) -> Ring {
        Ring { base, in_size, out_size }
    }

    pub fn inbound(&self) -> Half {
        Half { cons: 0, prod: 4, data: PAGE, size: self.in_size }
    }

    pub fn outbound(&self) -> Half {
        Half { cons: 8, prod: 12, data: PAGE + self.in_size, size: self.out_size }
    }

    fn index(&self, at: usize) -> &AtomicU32 {
        // SAFETY: `at` is 0, 4, 8 or 12, inside the header page Ring::new's caller keeps valid;
        // the page is aligned, so the u32 is; AtomicU32 has u32's layout, and the other side only
        // uses these words with aligned 32-bit loads and stores.
        unsafe { &*(self.base.add(at) as *const AtomicU32) }
    }

    pub fn store(&self, at: usize, value: u32) {
        self.index(at).store(value, Ordering::Release);
    }

    /// Bytes waiting in `h` for a consumer at `cons`: a producer claiming more is clamped.
    pub fn waiting(&self, h: Half, cons: u32) -> usize {
        let prod = self.index(h.prod).load(Ordering::Acquire);
        (prod.wrapping_sub(cons) as usize).min(h.size)
    }

    /// Copy as much of `src` as there is room for into `h`, for a producer at `prod`.
    pub fn produce(&self, h: Half, prod: &mut u32, src: &[u8]) -> usize {
        let cons = self.index(h.cons).load(Ordering::Acquire);
        let used = (prod.wrapping_sub(cons) as usize).min(h.size);
        let n = (h.size - used).min(src.len());
        if n == 0 {
            return 0;
        }
        let at = *prod as usize & (h.size - 1);
        let first = n.min(h.size - at);
        // SAFETY: [at, at + first) and [0, n - first) lie in h's data area (n <= size, so
        // n - first <= at), valid per Ring::new; src has n bytes; the areas do not overlap src.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(h.data + at), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.base.add(h.data), n - first);
        }
        *prod = prod.wrapping_add(n as u32);
        self.store(h.prod, *prod);
        n
    }

    /// Copy as much as is waiting in `h` (up to `dst`'s length) out, for a consumer at `cons`.
    pub fn consume(&self, h: Half, cons: &mut u32, dst: &mut [u8]) -> usize {
        let n = self.waiting(h, *cons).min(dst.len());
        if n == 0 {
            return 0;
        }
        let at = *cons as usize & (h.size - 1);
        let first = n.min(h.size - at);
        // SAFETY: as in produce, both pieces lie in h's data area; dst has n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(h.data + at), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.base.add(h.data), dst.as_mut_ptr().add(first), n - first);
        }
        *cons = cons.wrapping_add(n as u32);
        self.store(h.cons, *cons);
        n
    }
}

/// What the ring needs from Xen, or from a test's stand-in.
pub trait Backend {
    /// The memory: the header page, the in pages, the out pages, contiguous and page-aligned.
    fn memory(&self) -> *mut u8;
    /// Readable when the other side has notified.
    fn event_fd(&self) -> RawFd;
    fn notify(&self);
    /// Take the pending events and re-arm them; called before the ring is looked at.
    fn take_events(&self);
}

/// The guest's end of a bulk ring: writes go out, reads come in.
pub struct Bulk {
    ring: Ring,
    in_cons: u32,
    out_prod: u32,
    /// Bytes were produced since the host was last notified.
    unsent: bool,
    offer: Value,
    /// Dropped last: the ring points into its memory.
    backend: Box<dyn Backend>,
}

fn valid_pages(n: u32) -> bool {
    n.is_power_of_two() && n <= MAX_PAGES
}

impl Bulk {
    /// Grant 1 + in + out pages to dom0 and allocate a port for it.
    pub fn open(in_pages: u32, out_pages: u32) -> Result<Bulk, String> {
        if !valid_pages(in_pages) || !valid_pages(out_pages) {
            return Err(format!("ring sizes {} and {} pages: not powers of two up to {}", in_pages, out_pages, MAX_PAGES));
        }
        let (grant, refs) = Grant::open(1 + in_pages as usize + out_pages as usize)?;
        let port = Port::open()?;
        let number = port.number;
        Ok(Bulk::new(Box::new(Xen { grant, port }), in_pages, out_pages, refs, number))
    }

    /// A ring over `backend`'s memory (sizes checked by the caller), its header zeroed.
    pub fn new(backend: Box<dyn Backend>, in_pages: u32, out_pages: u32, refs: Vec<u32>, port: u32) -> Bulk {
        let (in_size, out_size) = (in_pages as usize * PAGE, out_pages as usize * PAGE);
        // SAFETY: the backend's memory is page-aligned, PAGE + in_size + out_size bytes long, and
        // lives as long as the backend, which the Bulk drops after the ring.
        let ring = unsafe { Ring::new(backend.memory(), in_size, out_size) };
        for at in [0, 4, 8, 12] {
            ring.store(at, 0);
        }
        let offer = json!({"refs": refs, "port": port, "inPages": in_pages, "outPages": out_pages});
        Bulk { ring, in_cons: 0, out_prod: 0, unsent: false, offer, backend }
    }

    /// BULK_OFFER's payload.
    pub fn offer(&self) -> Value {
        self.offer.clone()
    }

    /// Into the out ring, as much as fits; the host is notified at the end of the flush (`kick`).
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let h = self.ring.outbound();
        let n = self.ring.produce(h, &mut self.out_prod, bytes);
        self.unsent |= n > 0;
        n
    }

    /// Notify the host of what `write` produced since the last kick.
    pub fn kick(&mut self) {
        if self.unsent {
            self.unsent = false;
            self.backend.notify();
        }
    }

    /// From the in ring; the host is notified when bytes were taken (it may wait for room).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let h = self.ring.inbound();
        let n = self.ring.consume(h, &mut self.in_cons, buf);
        if n > 0 {
            self.backend.notify();
        }
        n
    }

    /// Whether the host has bytes waiting for us (no event needed to look).
    pub fn readable(&self) -> bool {
        self.ring.waiting(self.ring.inbound(), self.in_cons) > 0
    }

    pub fn event_fd(&self) -> RawFd {
        self.backend.event_fd()
    }

    pub fn take_events(&self) {
        self.backend.take_events();
    }
}

impl Sink for Bulk {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, std::io::Error> {
        Ok(Bulk::write(self, bytes))
    }

    fn flushed(&mut self) {
        self.kick();
    }
}

fn open_device(path: &str, flags: libc::c_int) -> Result<File, String> {
    let c = crate::sys::cstr(path)?;
    // SAFETY: a NUL-terminated path; the descriptor is wrapped at once.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | flags) };
    if fd < 0 {
        return Err(format!("{}: {}", path, std::io::Error::last_os_error()));
    }
    // SAFETY: fd is new and ours alone.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Pages granted to dom0 and mapped here. Dropping unmaps them, then closes the device, which
/// frees the grants (the kernel defers that while dom0 still maps them).
struct Grant {
    map: *mut u8,
    len: usize,
    _device: File,
}

impl Grant {
    fn open(count: usize) -> Result<(Grant, Vec<u32>), String> {
        let device = open_device(GNTALLOC, 0)?;
        let (index, refs) = alloc_grefs(device.as_raw_fd(), count)?;
        let (len, fd, prot) = (count * PAGE, device.as_raw_fd(), libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: a new shared mapping of the pages the ioctl just allocated at `index`; checked
        // for MAP_FAILED before use.
        let map = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, index as libc::off_t) };
        if map == libc::MAP_FAILED {
            return Err(format!("{}: mmap: {}", GNTALLOC, std::io::Error::last_os_error()));
        }
        Ok((Grant { map: map as *mut u8, len, _device: device }, refs))
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        // SAFETY: the mapping Grant::open made, unmapped once; nothing uses it after (the Bulk
        // drops its ring before its backend).
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.len) };
    }
}

/// IOCTL_GNTALLOC_ALLOC_GREF for `count` writable pages for domain 0: (mmap offset, refs).
fn alloc_grefs(fd: RawFd, count: usize) -> Result<(u64, Vec<u32>), String> {
    let mut arg = alloc_request(count);
    // SAFETY: the kernel reads the 24-byte struct and writes `index` and `count` refs after the
    // 16-byte head, all within `arg`.
    if unsafe { libc::ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, arg.as_mut_ptr()) } != 0 {
        return Err(format!("{}: allocating {} grants: {}", GNTALLOC, count, std::io::Error::last_os_error()));
    }
    Ok(alloc_answer(&arg, count))
}

/// struct ioctl_gntalloc_alloc_gref { u16 domid = 0; u16 flags; u32 count; u64 index; u32 gref_ids[count] }.
fn alloc_request(count: usize) -> Vec<u8> {
    let mut arg = vec![0u8; (ALLOC_HEAD + 4 * count).max(ALLOC_STRUCT)];
    arg[0..2].copy_from_slice(&0u16.to_ne_bytes());
    arg[2..4].copy_from_slice(&GNTALLOC_FLAG_WRITABLE.to_ne_bytes());
    arg[4..8].copy_from_slice(&(count as u32).to_ne_bytes());
    arg
}

/// The kernel's answer in a request's buffer: (index, gref_ids).
fn alloc_answer(arg: &[u8], count: usize) -> (u64, Vec<u32>) {
    let word = |at: usize| u32::from_ne_bytes([arg[at], arg[at + 1], arg[at + 2], arg[at + 3]]);
    let mut index = [0u8; 8];
    index.copy_from_slice(&arg[8..16]);
    (u64::from_ne_bytes(index), (0..count).map(|i| word(ALLOC_HEAD + 4 * i)).collect())
}

/// An event channel port allocated unbound for domain 0. Closing the device closes the port.
struct Port {
    device: File,
    number: u32,
}

impl Port {
    fn open() -> Result<Port, String> {
        let device = open_device(EVTCHN, libc::O_NONBLOCK)?;
        let mut remote_domain: u32 = 0;
        // SAFETY: the ioctl reads one u32 (struct ioctl_evtchn_bind_unbound_port) from a live one.
        let port = unsafe { libc::ioctl(device.as_raw_fd(), IOCTL_EVTCHN_BIND_UNBOUND_PORT, &mut remote_domain as *mut u32) };
        if port < 0 {
            return Err(format!("{}: allocating a port: {}", EVTCHN, std::io::Error::last_os_error()));
        }
        Ok(Port { device, number: port as u32 })
    }
}

struct Xen {
    grant: Grant,
    port: Port,
}

impl Backend for Xen {
    fn memory(&self) -> *mut u8 {
        self.grant.map
    }

    fn event_fd(&self) -> RawFd {
        self.port.device.as_raw_fd()
    }

    fn notify(&self) {
        let mut port = self.port.number;
        // SAFETY: the ioctl reads one u32 (struct ioctl_evtchn_notify) from a live one. A failure
        // leaves nothing to do: the host also looks at the ring when it writes.
        unsafe { libc::ioctl(self.port.device.as_raw_fd(), IOCTL_EVTCHN_NOTIFY, &mut port as *mut u32) };
    }

    /// The device's read gives the ports that fired (masked since); writing them back unmasks.
    fn take_events(&self) {
        let fd = self.port.device.as_raw_fd();
        let mut fired = [0u8; 64];
        while let super::io::Got::Data(n) = super::io::read(fd, &mut fired) {
            let _ = super::io::write(fd, &fired[..n - n % 4]);
        }
    }
}

#[cfg(test)]
pub mod fake {
    //! A bulk ring over plain memory and two eventfds, with the host's end, for tests.

    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::sync::Arc;

    pub struct Memory {
        ptr: *mut u8,
        layout: Layout,
    }

    // SAFETY: the memory is only ever accessed through a Ring, as the two ends of a shared ring
    // are (atomics for the indexes, disjoint bytes for the data).
    unsafe impl Send for Memory {}
    unsafe impl Sync for Memory {}

    impl Memory {
        pub fn new(len: usize) -> Arc<Memory> {
            let layout = Layout::from_size_align(len, PAGE).unwrap();
            // SAFETY: a non-zero size; checked for null.
            let ptr = unsafe { alloc_zeroed(layout) };
            assert!(!ptr.is_null());
            Arc::new(Memory { ptr, layout })
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            // SAFETY: allocated in new with this layout, freed once.
            unsafe { dealloc(self.ptr, self.layout) };
        }
    }

    pub fn eventfd() -> File {
        // SAFETY: a new descriptor, wrapped at once.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: fd is new and ours alone.
        unsafe { File::from_raw_fd(fd) }
    }

    pub fn signal(f: &File) {
        let one = 1u64.to_ne_bytes();
        let _ = crate::channel::io::write(f.as_raw_fd(), &one);
    }

    /// Whether it was signalled (and now clear).
    pub fn take(f: &File) -> bool {
        let mut v = [0u8; 8];
        matches!(crate::channel::io::read(f.as_raw_fd(), &mut v), crate::channel::io::Got::Data(_))
    }

    /// The guest's backend: notifies `to_host`, is woken by `to_guest`.
    pub struct Fake {
        pub memory: Arc<Memory>,
        pub to_guest: File,
        pub to_host: File,
    }

    impl Backend for Fake {
        fn memory(&self) -> *mut u8 {
            self.memory.ptr
        }
        fn event_fd(&self) -> RawFd {
            self.to_guest.as_raw_fd()
        }
        fn notify(&self) {
            signal(&self.to_host);
        }
        fn take_events(&self) {
            take(&self.to_guest);
        }
    }

    /// What the host's end needs, sendable to another thread.
    pub struct Parts {
        pub memory: Arc<Memory>,
        pub to_guest: File,
        pub to_host: File,
        pub pages: (u32, u32),
    }

    /// A guest's Bulk and the parts of its host end.
    pub fn pair(in_pages: u32, out_pages: u32) -> (Bulk, Parts) {
        let memory = Memory::new(PAGE * (1 + in_pages + out_pages) as usize);
        let (to_guest, to_host) = (eventfd(), eventfd());
        let dup = |f: &File| f.try_clone().unwrap();
        let parts = Parts { memory: memory.clone(), to_guest: dup(&to_guest), to_host: dup(&to_host), pages: (in_pages, out_pages) };
        let refs = (0..1 + in_pages + out_pages).map(|i| 100 + i).collect();
        (Bulk::new(Box::new(Fake { memory, to_guest, to_host }), in_pages, out_pages, refs, 7), parts)
    }

    /// The host's end: writes the in ring, reads the out ring.
    pub struct Host {
        pub parts: Parts,
        pub ring: Ring,
        in_prod: u32,
        out_cons: u32,
    }

    impl Host {
        pub fn new(parts: Parts) -> Host {
            let (i, o) = parts.pages;
            // SAFETY: Memory::new made it page-aligned and this long; `parts` keeps it alive.
            let ring = unsafe { Ring::new(parts.memory.ptr, i as usize * PAGE, o as usize * PAGE) };
            Host { parts, ring, in_prod: 0, out_cons: 0 }
        }

        pub fn write(&mut self, bytes: &[u8]) -> usize {
            let n = self.ring.produce(self.ring.inbound(), &mut self.in_prod, bytes);
            if n > 0 {
                signal(&self.parts.to_guest);
            }
            n
        }

        pub fn read(&mut self, buf: &mut [u8]) -> usize {
            let n = self.ring.consume(self.ring.outbound(), &mut self.out_cons, buf);
            if n > 0 {
                signal(&self.parts.to_guest);
            }
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{self, Host};
    use super::*;

    /// A ring over plain memory, driven directly (the guest's end dropped).
    fn plain(in_pages: u32, out_pages: u32) -> Host {
        let (bulk, parts) = fake::pair(in_pages, out_pages);
        drop(bulk);
        Host::new(parts)
    }

    #[test]
    fn bytes_wrap_around_the_end_of_a_ring() {
        let host = plain(1, 1);
        let ring = &host.ring;
        let h = ring.inbound();
        let (mut prod, mut cons) = (0u32, 0u32);
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut got = vec![0u8; 4096];
        for round in 0..5 {
            assert_eq!(ring.produce(h, &mut prod, &data), 3000, "round {}", round);
            assert_eq!(ring.consume(h, &mut cons, &mut got), 3000);
            assert_eq!(&got[..3000], &data[..], "round {}: the bytes across the wrap", round);
        }
        assert_eq!((prod, cons), (15000, 15000), "free-running");
    }

    #[test]
    fn a_full_ring_takes_nothing_until_bytes_are_consumed() {
        let host = plain(1, 2);
        let ring = &host.ring;
        let h = ring.outbound();
        let (mut prod, mut cons) = (0u32, 0u32);
        assert_eq!(ring.produce(h, &mut prod, &vec![1u8; 3 * PAGE]), 2 * PAGE, "a ring's worth");
        assert_eq!(ring.produce(h, &mut prod, &[2u8; 10]), 0, "full");
        let mut got = vec![0u8; 100];
        assert_eq!(ring.consume(h, &mut cons, &mut got), 100);
        assert_eq!(ring.produce(h, &mut prod, &[2u8; 1000]), 100, "room for what was taken");
        assert_eq!(ring.waiting(h, cons), 2 * PAGE);
    }

    #[test]
    fn indexes_wrap_at_2_to_the_32() {
        let host = plain(1, 1);
        let ring = &host.ring;
        let h = ring.inbound();
        let start = u32::MAX - 100;
        let (mut prod, mut cons) = (start, start);
        ring.store(h.prod, start);
        ring.store(h.cons, start);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(ring.produce(h, &mut prod, &data), 1000);
        let mut got = vec![0u8; 1000];
        assert_eq!(ring.consume(h, &mut cons, &mut got), 1000);
        assert_eq!((got, prod, cons), (data, start.wrapping_add(1000), start.wrapping_add(1000)));
    }

    #[test]
    fn a_bogus_producer_is_clamped_to_the_ring_size() {
        let host = plain(1, 1);
        let ring = &host.ring;
        let h = ring.inbound();
        let mut cons = 0u32;
        ring.store(h.prod, 10 * PAGE as u32);
        assert_eq!(ring.waiting(h, cons), PAGE);
        let mut got = vec![0u8; 10 * PAGE];
        assert_eq!(ring.consume(h, &mut cons, &mut got), PAGE, "at most a ring's worth");
        ring.store(h.prod, u32::MAX);
        assert_eq!(ring.waiting(h, cons), PAGE, "a producer behind the consumer too");
        // A consumer claiming to be ahead of our producer: no room rather than an overwrite.
        let o = ring.outbound();
        let mut prod = 0u32;
        ring.store(o.cons, 12345);
        assert_eq!(ring.produce(o, &mut prod, &[1u8; 10]), 0);
    }

    #[test]
    fn the_guest_end_notifies_and_offers_its_layout() {
        let (mut bulk, parts) = fake::pair(2, 4);
        let mut host = Host::new(parts);
        assert_eq!(bulk.offer(), json!({"refs": [100, 101, 102, 103, 104, 105, 106], "port": 7, "inPages": 2, "outPages": 4}));
        assert_eq!(bulk.write(b"hello"), 5);
        assert!(!fake::take(&host.parts.to_host), "not before the kick");
        bulk.kick();
        assert!(fake::take(&host.parts.to_host));
        bulk.kick();
        assert!(!fake::take(&host.parts.to_host), "once per batch");
        let mut buf = [0u8; 16];
        assert_eq!(host.read(&mut buf), 5);
        assert_eq!(&buf[..5], b"hello");
        assert!(!bulk.readable());
        assert_eq!(host.write(b"world"), 5);
        assert!(bulk.readable());
        bulk.take_events();
        assert_eq!(bulk.read(&mut buf), 5);
        assert_eq!(&buf[..5], b"world");
        assert!(fake::take(&host.parts.to_host), "the host learns there is room");
        assert_eq!(bulk.read(&mut buf), 0);
        assert!(!fake::take(&host.parts.to_host), "nothing taken, nothing said");
    }

    #[test]
    fn the_grant_request_has_the_kernels_layout() {
        assert_eq!(IOCTL_GNTALLOC_ALLOC_GREF, (ALLOC_STRUCT as libc::c_ulong) << 16 | (b'G' as libc::c_ulong) << 8 | 5, "_IOC(_IOC_NONE, 'G', 5, 24)");
        assert_eq!(IOCTL_EVTCHN_BIND_UNBOUND_PORT, 4 << 16 | (b'E' as libc::c_ulong) << 8 | 2);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 4 << 16 | (b'E' as libc::c_ulong) << 8 | 4);
        let one = alloc_request(1);
        assert_eq!(one.len(), 24, "never less than the struct the kernel reads");
        let mut three = alloc_request(3);
        assert_eq!(three.len(), 16 + 12);
        assert_eq!(&three[..8], &[0, 0, 1, 0, 3, 0, 0, 0][..], "domid 0, writable, count (little-endian)");
        three[8..16].copy_from_slice(&0x5000u64.to_ne_bytes());
        for (i, r) in [11u32, 12, 13].iter().enumerate() {
            three[16 + 4 * i..20 + 4 * i].copy_from_slice(&r.to_ne_bytes());
        }
        assert_eq!(alloc_answer(&three, 3), (0x5000, vec![11, 12, 13]));
    }

    #[test]
    fn sizes_are_checked_before_anything_is_opened() {
        assert!(Bulk::open(3, 16).is_err());
        assert!(Bulk::open(16, 64).is_err());
        assert!(Bulk::open(0, 1).is_err());
    }
}
