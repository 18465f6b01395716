//! The channel's event loop: one thread polling the device, the sessions' descriptors and the
//! reaper's wake pipe. It answers the handshake, runs EXEC sessions, forwards signals and sizes,
//! and answers METRICS_REQUEST. Nothing here blocks for long: PID 1's work goes on beside it.

use super::exec::{self, Defaults};
use super::frame::{self, Decoder, Frame};
use super::io::{self, log, Got};
use super::messages::{self, Ended};
use super::outbox::Outbox;
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

pub struct Io {
    pub input: File,
    pub output: File,
    /// The console's terminal, for RESIZE on stream 0.
    pub console: Option<File>,
}

struct Server {
    io: Io,
    defaults: Defaults,
    decoder: Decoder,
    outbox: Outbox,
    up: bool,
    sessions: Vec<Session>,
    wake: File,
    buf: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Target {
    Device,
    Flush,
    Wake,
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
    let mut s = Server { io, defaults, decoder, outbox, up: false, sessions: Vec::new(), wake, buf };
    s.outbox.json(frame::HELLO, 0, &messages::hello());
    let result = s.run();
    s.reset();
    result
}

impl Server {
    fn run(&mut self) -> Result<(), String> {
        loop {
            self.outbox.flush(self.io.output.as_raw_fd()).map_err(|e| format!("write: {}", e))?;
            let (mut fds, targets) = self.poll_set();
            let timeout = self.timeout();
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
            let mut device_ready = false;
            for (p, t) in fds.iter().zip(targets.iter()) {
                if p.revents == 0 {
                    continue;
                }
                match *t {
                    Target::Output(i, which) => self.sessions[i].read_output(which, &mut self.buf, &mut self.outbox),
                    Target::Input(i) => self.sessions[i].pump_stdin(&mut self.outbox),
                    Target::Wake => self.take_exits(),
                    Target::Device => device_ready = true,
                    Target::Flush => {}
                }
            }
            if device_ready && !self.read_device() {
                return Ok(());
            }
            self.finish_sessions();
        }
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Target>) {
        let mut fds = Vec::new();
        let mut targets = Vec::new();
        let mut add = |fd: i32, events: libc::c_short, t: Target| {
            fds.push(libc::pollfd { fd, events, revents: 0 });
            targets.push(t);
        };
        if self.outbox.pending() < OUTBOX_MAX {
            add(self.io.input.as_raw_fd(), libc::POLLIN, Target::Device);
        }
        if self.outbox.pending() > 0 {
            add(self.io.output.as_raw_fd(), libc::POLLOUT, Target::Flush);
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
                Ok(f) => self.handle(f),
                Err(e) => log(&format!("malformed frame from the host ({}); waiting for its next HELLO", e)),
            }
        }
        true
    }

    fn handle(&mut self, f: Frame) {
        match f.kind {
            frame::HELLO => {
                // None: not the host's (an echo of ours before the device was raw).
                if let Some((version, ack)) = messages::answer_hello(&f.payload) {
                    self.reset();
                    self.outbox.json(frame::HELLO_ACK, 0, &ack);
                    self.up = version != 0;
                    if !self.up {
                        log(ack["error"].as_str().unwrap_or("no common version"));
                    }
                }
            }
            frame::HELLO_ACK => {
                self.up = messages::acked_version(&f.payload) == messages::VERSION;
                if !self.up {
                    log(&format!("the host refused the handshake: {}", String::from_utf8_lossy(&f.payload)));
                }
            }
            // Nothing but the handshake before it is done.
            _ if !self.up => {}
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

    /// A new conversation (or the end of this one): every session's process group is killed.
    fn reset(&mut self) {
        for s in self.sessions.drain(..) {
            s.kill();
            reaper::lock().release(s.pid);
        }
        self.outbox.drop_unstarted();
        self.up = false;
    }
}
