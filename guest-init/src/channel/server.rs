//! The channel's event loop: one thread polling the device, the sessions' descriptors, the
//! reaper's wake pipe and, at version 2, the bulk ring's event channel. It answers the handshake,
//! runs EXEC sessions, forwards signals and sizes, and answers METRICS_REQUEST. Nothing here blocks
//! for long: PID 1's work goes on beside it.
//!
//! Version 2 (PROTOCOL.md, "Bulk ring"): once up at 2 it offers a bulk ring (when `Io::bulk` can
//! open one; never in `--stdio`). On the host's BULK_SWITCH it reads the host's frames from the
//! ring only, and queues its own BULK_SWITCH as the console's last frame: the outbox writes the
//! frames queued before it to the console, then everything after it to the ring. The console is
//! still read, for a restarted host's HELLO alone, which drops the ring (and whatever was queued
//! for it) and goes back to the console.

use super::bulk::Bulk;
use super::exec::{self, Defaults};
use super::frame::{self, Decoder, Frame};
use super::io::{self, log, Got};
use super::messages::{self, Ended};
use super::outbox::{Fd, Flushed, Outbox};
use super::session::Session;
use super::{metrics, pty, reaper};
use serde_json::json;
use std::fs::File;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::time::Instant;

/// Sessions at once. The host allows 16 (MAX_SESSIONS); this only bounds a confused one.
const MAX_SESSIONS: usize = 64;
/// Session output is not read while this much waits for the device: memory stays bounded and a
/// slow device slows the processes down instead.
const OUTBOX_HIGH: usize = 256 << 10;
/// The device is not read while this much waits to be written to it: a host that asks without
/// reading the answers is slowed down instead of growing our memory.
const OUTBOX_MAX: usize = 1 << 20;
const READ_CHUNK: usize = 64 << 10;

/// Opens a bulk ring for a conversation at version 2.
pub type OpenBulk = Box<dyn FnMut() -> Result<Bulk, String> + Send>;

pub struct Io {
    pub input: File,
    pub output: File,
    /// The console's terminal, for RESIZE on stream 0.
    pub console: Option<File>,
    /// None: never offer a bulk ring (the standalone mode has no Xen devices).
    pub bulk: Option<OpenBulk>,
}

/// The bulk ring of this conversation, from its offer to the next reset.
struct Route {
    bulk: Option<Bulk>,
    /// An offer was tried in this conversation: one per conversation.
    offered: bool,
    /// The host switched: its frames come from the ring, the console carries only its HELLO.
    reading: bool,
    /// Our BULK_SWITCH is written: our frames go to the ring.
    writing: bool,
    decoder: Decoder,
}

impl Route {
    fn new() -> Route {
        Route { bulk: None, offered: false, reading: false, writing: false, decoder: Decoder::default() }
    }
}

struct Server {
    io: Io,
    defaults: Defaults,
    decoder: Decoder,
    outbox: Outbox,
    /// The version agreed; 0 until up.
    version: u64,
    route: Route,
    /// "No bulk ring" was logged: once is enough.
    told_no_bulk: bool,
    sessions: Vec<Session>,
    wake: File,
    buf: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Target {
    Device,
    Flush,
    Wake,
    Events,
    Output(usize, usize),
    Input(usize),
}

/// Serve until the input ends (Ok) or the device fails (Err).
pub fn serve(io: Io, defaults: Defaults) -> Result<(), String> {
    // SAFETY: the read end reaper::wake_pipe just made, ours alone.
    let wake = unsafe { File::from_raw_fd(reaper::wake_pipe()?) };
    io::set_nonblocking(io.input.as_raw_fd())?;
    io::set_nonblocking(io.output.as_raw_fd())?;
    let (decoder, outbox, buf) = (Decoder::default(), Outbox::default(), vec![0; READ_CHUNK]);
    let mut s = Server { io, defaults, decoder, outbox, version: 0, route: Route::new(), told_no_bulk: false, sessions: Vec::new(), wake, buf };
    s.outbox.json(frame::HELLO, 0, &messages::hello());
    let result = s.run();
    s.reset();
    result
}

impl Server {
    fn run(&mut self) -> Result<(), String> {
        loop {
            self.flush()?;
            let (mut fds, targets) = self.poll_set();
            let timeout = if self.ring_waiting() { 0 } else { self.timeout() };
            // SAFETY: fds is a live array of fds.len() pollfd entries.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(format!("poll: {}", e));
                }
                continue;
            }
            // Sessions' descriptors first, while the indices still hold; frames may remove sessions.
            let (mut device_ready, mut events) = (false, false);
            for (p, t) in fds.iter().zip(targets.iter()) {
                if p.revents == 0 {
                    continue;
                }
                match *t {
                    Target::Output(i, which) => self.sessions[i].read_output(which, &mut self.buf, &mut self.outbox),
                    Target::Input(i) => self.sessions[i].pump_stdin(&mut self.outbox),
                    Target::Wake => self.take_exits(),
                    Target::Device => device_ready = true,
                    Target::Events => events = true,
                    Target::Flush => {}
                }
            }
            if events {
                // Re-armed before the ring is looked at (here and at the next flush): no wakeup is lost.
                if let Some(b) = &self.route.bulk {
                    b.take_events();
                }
            }
            if device_ready && !self.read_device() {
                return Ok(());
            }
            self.read_ring();
            self.finish_sessions();
        }
    }

    /// Write what the output takes; past our BULK_SWITCH, the output is the ring.
    fn flush(&mut self) -> Result<(), String> {
        loop {
            let flushed = match self.route.bulk.as_mut().filter(|_| self.route.writing) {
                Some(b) => self.outbox.flush(b),
                None => self.outbox.flush(&mut Fd(self.io.output.as_raw_fd())),
            };
            match flushed.map_err(|e| format!("write: {}", e))? {
                Flushed::Sink => return Ok(()),
                Flushed::Switch => self.route.writing = self.route.bulk.is_some(),
            }
        }
    }

    /// Host frames wait in the ring and we may take them: look again without waiting.
    fn ring_waiting(&self) -> bool {
        self.route.reading && self.outbox.pending() < OUTBOX_MAX && self.route.bulk.as_ref().map_or(false, Bulk::readable)
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Target>) {
        let mut fds = Vec::new();
        let mut targets = Vec::new();
        let mut add = |fd: i32, events: libc::c_short, t: Target| {
            fds.push(libc::pollfd { fd, events, revents: 0 });
            targets.push(t);
        };
        // Past the switch the console only brings a restarted host's HELLO, which must be seen
        // even while output for the old ring piles up.
        if self.route.reading || self.outbox.pending() < OUTBOX_MAX {
            add(self.io.input.as_raw_fd(), libc::POLLIN, Target::Device);
        }
        if self.outbox.pending() > 0 && !self.route.writing {
            add(self.io.output.as_raw_fd(), libc::POLLOUT, Target::Flush);
        }
        // The host notifies when it wrote to the ring and when it made room in it.
        if let Some(b) = &self.route.bulk {
            add(b.event_fd(), libc::POLLIN, Target::Events);
        }
        add(self.wake.as_raw_fd(), libc::POLLIN, Target::Wake);
        let room = self.outbox.pending() < OUTBOX_HIGH;
        for (i, s) in self.sessions.iter().enumerate() {
            for which in 0..2 {
                if let Some(fd) = s.out[which].wants_read().filter(|_| room) {
                    add(fd, libc::POLLIN, Target::Output(i, which));
                }
            }
            if let Some(fd) = s.wants_write() {
                add(fd, libc::POLLOUT, Target::Input(i));
            }
        }
        (fds, targets)
    }

    /// Until the earliest lingering session may be ended; forever when none lingers.
    fn timeout(&self) -> libc::c_int {
        let now = Instant::now();
        match self.sessions.iter().filter(|s| s.ended.is_some()).filter_map(Session::deadline).min() {
            Some(d) => d.saturating_duration_since(now).as_millis().min(60_000) as libc::c_int + 1,
            None => -1,
        }
    }

    /// Read what the device has and act on its frames; false when its input has ended.
    fn read_device(&mut self) -> bool {
        match io::read(self.io.input.as_raw_fd(), &mut self.buf) {
            Got::Data(n) => self.decoder.push(&self.buf[..n]),
            Got::Again => return true,
            Got::End => return false,
        }
        while let Some(next) = self.decoder.next() {
            match next {
                // Past the switch, only a restarted host's HELLO counts here.
                Ok(f) if self.route.reading && f.kind != frame::HELLO => {}
                Ok(f) => self.handle(f),
                Err(_) if self.route.reading => {}
                Err(e) => log(&format!("malformed frame from the host ({}); waiting for its next HELLO", e)),
            }
        }
        true
    }

    /// Once switched: read what the ring has (one buffer's worth a turn) and act on its frames.
    fn read_ring(&mut self) {
        if !self.route.reading || self.outbox.pending() >= OUTBOX_MAX {
            return;
        }
        let n = match self.route.bulk.as_mut() {
            Some(b) => b.read(&mut self.buf),
            None => return,
        };
        if n == 0 {
            return;
        }
        self.route.decoder.push(&self.buf[..n]);
        while self.route.reading {
            match self.route.decoder.next() {
                None => break,
                Some(Ok(f)) if matches!(f.kind, frame::HELLO | frame::HELLO_ACK | frame::BULK_SWITCH) => {
                    log(&format!("frame type 0x{:02x} on the bulk ring, where it has no place: ignored", f.kind))
                }
                Some(Ok(f)) => self.handle(f),
                Some(Err(e)) => log(&format!("malformed frame from the host on the bulk ring ({}); waiting for its next HELLO", e)),
            }
        }
    }

    fn handle(&mut self, f: Frame) {
        match f.kind {
            frame::HELLO => {
                // None: not the host's (an echo of ours before the device was raw).
                if let Some((version, ack)) = messages::answer_hello(&f.payload) {
                    self.reset();
                    self.outbox.json(frame::HELLO_ACK, 0, &ack);
                    self.version = version;
                    if version == 0 {
                        log(ack["error"].as_str().unwrap_or("no common version"));
                    }
                    self.offer_bulk();
                }
            }
            frame::HELLO_ACK => {
                self.version = messages::acked_version(&f.payload);
                if self.version == 0 {
                    log(&format!("the host refused the handshake: {}", String::from_utf8_lossy(&f.payload)));
                }
                self.offer_bulk();
            }
            // Nothing but the handshake before it is done.
            _ if self.version == 0 => {}
            frame::BULK_SWITCH => self.switch(),
            frame::EXEC => self.exec(f.stream, &f.payload),
            frame::STDIN => self.stdin(f.stream, &f.payload, f.fin()),
            frame::WINDOW => {
                if let (Some(s), Some((kind, n))) = (self.session(f.stream), messages::window(&f.payload)) {
                    s.grant(kind, n);
                }
            }
            frame::RESIZE => {
                if let Some((rows, cols)) = messages::resize(&f.payload) {
                    if f.stream == 0 {
                        if let Some(c) = &self.io.console {
                            let _ = pty::set_size(c.as_raw_fd(), rows, cols);
                        }
                    } else if let Some(s) = self.session(f.stream) {
                        s.resize(rows, cols);
                    }
                }
            }
            frame::SIGNAL => {
                if let (Some(s), Some(sig)) = (self.session(f.stream), messages::signal(&f.payload)) {
                    s.signal(sig);
                }
            }
            frame::CLOSE => self.end_session(f.stream, None),
            frame::METRICS_REQUEST if f.stream != 0 => self.outbox.json(frame::METRICS, f.stream, &metrics::read()),
            // The guest's own types, or a stream-0 request: not for the guest to act on.
            _ => {}
        }
    }

    /// Up at version 2: offer a ring, once per conversation. Failing that, the console it is.
    fn offer_bulk(&mut self) {
        if self.version < 2 || self.route.offered {
            return;
        }
        self.route.offered = true;
        let opened = match self.io.bulk.as_mut() {
            Some(open) => open(),
            None => return,
        };
        match opened {
            Ok(b) => {
                self.outbox.json(frame::BULK_OFFER, 0, &b.offer());
                self.route.bulk = Some(b);
            }
            Err(e) if !self.told_no_bulk => {
                self.told_no_bulk = true;
                log(&format!("no bulk ring ({}): exec data goes over the console", e));
            }
            Err(_) => {}
        }
    }

    /// The host's BULK_SWITCH (its last frame on the console): read the ring from now on, and
    /// end our side of the console with our own BULK_SWITCH.
    fn switch(&mut self) {
        if self.version < 2 || self.route.bulk.is_none() || self.route.reading {
            log("BULK_SWITCH from the host with no offer outstanding: ignored");
            return;
        }
        self.route.reading = true;
        self.outbox.push_last(frame::BULK_SWITCH, 0, &[]);
    }

    fn session(&mut self, id: u32) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }

    fn exec(&mut self, id: u32, payload: &[u8]) {
        if id == 0 || self.sessions.iter().any(|s| s.id == id) {
            log(&format!("EXEC on stream {}, which is not a new one: ignored", id));
            return;
        }
        let started = if self.sessions.len() >= MAX_SESSIONS {
            Err(exec::StartError { message: format!("too many sessions (at most {})", MAX_SESSIONS), code: 126 })
        } else {
            let defaults = &self.defaults;
            messages::parse_exec(payload)
                .map_err(|message| exec::StartError { message, code: 126 })
                .and_then(|r| exec::resolve_here(&r, defaults).and_then(|l| exec::spawn(&l, r.tty, r.stdin, r.rows, r.cols)))
        };
        match started {
            Ok(child) => {
                self.outbox.json(frame::STARTED, id, &json!({"pid": child.pid}));
                self.sessions.push(Session::new(id, child));
            }
            Err(e) => self.outbox.json(frame::EXIT, id, &messages::exit_error(&e.message, e.code)),
        }
    }

    fn stdin(&mut self, id: u32, data: &[u8], fin: bool) {
        let outbox = &mut self.outbox;
        let accepted = match self.sessions.iter_mut().find(|s| s.id == id) {
            Some(s) => s.accept_stdin(data, fin, outbox),
            None => return, // ended already: dropped
        };
        if !accepted {
            log(&format!("stream {}: STDIN past the window the guest granted; the session is ended", id));
            self.end_session(id, Some("stdin exceeded its window"));
        }
    }

    /// Kill a session's process group and forget it; with a reason, tell the host with EXIT.
    fn end_session(&mut self, id: u32, error: Option<&str>) {
        if let Some(i) = self.sessions.iter().position(|s| s.id == id) {
            let s = self.sessions.remove(i);
            s.kill();
            reaper::lock().release(s.pid);
            if let Some(e) = error {
                self.outbox.json(frame::EXIT, id, &messages::exit_error(e, 126));
            }
        }
    }

    fn take_exits(&mut self) {
        let mut drain = [0u8; 64];
        while let Got::Data(_) = io::read(self.wake.as_raw_fd(), &mut drain) {}
        let exits = reaper::lock().take_exits();
        let now = Instant::now();
        for (pid, how) in exits {
            if let Some(s) = self.sessions.iter_mut().find(|s| s.pid == pid) {
                s.exited(how, now);
            }
        }
    }

    /// EXIT for every session whose process ended and whose output is done.
    fn finish_sessions(&mut self) {
        let now = Instant::now();
        let full = self.outbox.pending() >= OUTBOX_HIGH;
        let mut i = 0;
        while i < self.sessions.len() {
            if self.sessions[i].over(now, full) {
                let s = self.sessions.remove(i);
                let how = s.ended.unwrap_or(Ended::Code(0));
                self.outbox.json(frame::EXIT, s.id, &messages::exit(how));
            } else {
                i += 1;
            }
        }
    }

    /// A new conversation (or the end of this one): every session's process group is killed, and
    /// the bulk ring is dropped (unmapped, its grants and port freed): both directions are back on
    /// the console.
    fn reset(&mut self) {
        for s in self.sessions.drain(..) {
            s.kill();
            reaper::lock().release(s.pid);
        }
        if self.route.writing {
            // Even a frame half written to the ring: its rest must not continue on the console.
            self.outbox.clear();
        } else {
            self.outbox.drop_unstarted();
        }
        self.route = Route::new();
        self.version = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::bulk::fake::{self, Host, Parts};
    use serde_json::Value;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(10);
    const QUIET: Duration = Duration::from_millis(300);

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: a new pipe, wrapped at once.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK), 0);
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        }
    }

    /// Whether `fd` became readable within `wait`.
    fn readable(fd: i32, wait: Duration) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) > 0 }
    }

    /// The host's end of one transport: frames out of a decoder, more bytes when it is empty.
    trait End {
        fn decoder(&mut self) -> &mut Decoder;
        /// Bytes now, or wait up to `wait` for some.
        fn bytes(&mut self, buf: &mut [u8], wait: Duration) -> usize;

        fn next(&mut self, wait: Duration) -> Option<Frame> {
            let deadline = Instant::now() + wait;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                if let Some(f) = self.decoder().next() {
                    return Some(f.expect("a well-formed frame from the guest"));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                let n = self.bytes(&mut buf, left);
                self.decoder().push(&buf[..n]);
            }
        }

        fn expect(&mut self, kind: u8, stream: u32) -> Frame {
            let f = self.next(WAIT).unwrap_or_else(|| panic!("no frame 0x{:02x} on stream {}", kind, stream));
            assert_eq!((f.kind, f.stream), (kind, stream), "{:?}", String::from_utf8_lossy(&f.payload));
            f
        }
    }

    struct Console {
        to_guest: File,
        from_guest: File,
        decoder: Decoder,
    }

    impl Console {
        fn send(&self, kind: u8, stream: u32, payload: &[u8]) {
            let f = frame::encode(kind, 0, stream, payload);
            assert_eq!(io::write(self.to_guest.as_raw_fd(), &f).unwrap(), f.len());
        }

        fn hello(&self, min: u64, max: u64) {
            self.send(frame::HELLO, 0, json!({"role": "host", "min": min, "max": max, "software": "test"}).to_string().as_bytes());
        }
    }

    impl End for Console {
        fn decoder(&mut self) -> &mut Decoder {
            &mut self.decoder
        }
        fn bytes(&mut self, buf: &mut [u8], wait: Duration) -> usize {
            if !readable(self.from_guest.as_raw_fd(), wait) {
                return 0;
            }
            match io::read(self.from_guest.as_raw_fd(), buf) {
                Got::Data(n) => n,
                _ => 0,
            }
        }
    }

    struct Ring {
        host: Host,
        decoder: Decoder,
    }

    impl Ring {
        fn send(&mut self, kind: u8, stream: u32) {
            let f = frame::encode(kind, 0, stream, &[]);
            assert_eq!(self.host.write(&f), f.len(), "room in the in ring");
        }
    }

    impl End for Ring {
        fn decoder(&mut self) -> &mut Decoder {
            &mut self.decoder
        }
        fn bytes(&mut self, buf: &mut [u8], wait: Duration) -> usize {
            let n = self.host.read(buf);
            if n > 0 {
                return n;
            }
            // The guest notifies after writing; its eventfd stays readable until taken.
            if readable(self.host.parts.to_host.as_raw_fd(), wait) {
                fake::take(&self.host.parts.to_host);
            }
            self.host.read(buf)
        }
    }

    fn json_of(f: &Frame) -> Value {
        serde_json::from_slice(&f.payload).unwrap()
    }

    #[test]
    fn the_conversation_moves_onto_the_bulk_ring_and_back_to_the_console_on_a_new_hello() {
        let (guest_in, host_out) = pipe();
        let (host_in, guest_out) = pipe();
        let (offers, offered) = mpsc::channel::<Parts>();
        // One-page rings: a hundred answers fill the out ring many times over.
        let open: OpenBulk = Box::new(move || {
            let (bulk, parts) = fake::pair(1, 1);
            offers.send(parts).map_err(|e| e.to_string())?;
            Ok(bulk)
        });
        let io = Io { input: guest_in, output: guest_out, console: None, bulk: Some(open) };
        let server = std::thread::spawn(move || serve(io, crate::channel::current_defaults()));
        let mut c = Console { to_guest: host_out, from_guest: host_in, decoder: Decoder::default() };

        assert_eq!(json_of(&c.expect(frame::HELLO, 0))["max"], 2);
        c.hello(1, 2);
        assert_eq!(json_of(&c.expect(frame::HELLO_ACK, 0))["version"], 2);
        let offer = json_of(&c.expect(frame::BULK_OFFER, 0));
        assert_eq!(offer, json!({"refs": [100, 101, 102], "port": 7, "inPages": 1, "outPages": 1}));
        let parts = offered.recv_timeout(WAIT).unwrap();
        let first_memory = parts.memory.clone();
        let mut ring = Ring { host: Host::new(parts), decoder: Decoder::default() };

        // Until the switch, the console; what waits in the ring is not read yet.
        c.send(frame::METRICS_REQUEST, 1, &[]);
        c.expect(frame::METRICS, 1);
        ring.send(frame::METRICS_REQUEST, 2);
        assert!(ring.next(QUIET).is_none(), "the ring is not read before the host's switch");
        c.send(frame::BULK_SWITCH, 0, &[]);
        c.expect(frame::BULK_SWITCH, 0);
        ring.expect(frame::METRICS, 2);
        for id in 3..103 {
            ring.send(frame::METRICS_REQUEST, id);
        }
        for id in 3..103 {
            ring.expect(frame::METRICS, id);
        }
        // The console now only brings a HELLO: nothing else is answered, there or anywhere.
        c.send(frame::METRICS_REQUEST, 200, &[]);
        c.send(frame::BULK_SWITCH, 0, &[]);
        assert!(c.next(QUIET).is_none(), "the guest's last console frame was its BULK_SWITCH");
        assert!(ring.next(QUIET).is_none());

        // A restarted host: the ring is dropped, the answer and a new offer come on the console.
        c.hello(1, 2);
        assert_eq!(json_of(&c.expect(frame::HELLO_ACK, 0))["version"], 2);
        c.expect(frame::BULK_OFFER, 0);
        assert_eq!(Arc::strong_count(&first_memory), 2, "the guest let go of the first ring");
        let mut second = Ring { host: Host::new(offered.recv_timeout(WAIT).unwrap()), decoder: Decoder::default() };
        c.send(frame::METRICS_REQUEST, 201, &[]);
        c.expect(frame::METRICS, 201);
        assert!(ring.next(QUIET).is_none(), "nothing more on the old ring");

        // Onto the second ring, whose host stops reading: its out ring fills, likely mid-frame.
        c.send(frame::BULK_SWITCH, 0, &[]);
        c.expect(frame::BULK_SWITCH, 0);
        for id in 400..450 {
            second.send(frame::METRICS_REQUEST, id);
        }
        assert!(readable(second.host.parts.to_host.as_raw_fd(), WAIT));
        std::thread::sleep(QUIET);

        // Version 1: no offer, and a BULK_SWITCH with no offer outstanding changes nothing. The
        // answer comes whole on the console: what was left for the ring did not follow it there.
        c.hello(1, 1);
        assert_eq!(json_of(&c.expect(frame::HELLO_ACK, 0))["version"], 1);
        c.send(frame::BULK_SWITCH, 0, &[]);
        c.send(frame::METRICS_REQUEST, 300, &[]);
        c.expect(frame::METRICS, 300);
        assert!(offered.try_recv().is_err(), "no offer at version 1");
        assert_eq!(Arc::strong_count(&second.host.parts.memory), 1, "the second ring was dropped by the reset");
        let mut left = 0;
        while let Some(f) = second.next(QUIET) {
            assert_eq!(f.kind, frame::METRICS);
            left += 1;
        }
        assert!(left < 50, "the ring was full: {} answers", left);

        drop(c.to_guest);
        assert_eq!(server.join().unwrap(), Ok(()));
    }
}
