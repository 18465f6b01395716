//! One exec session: its process, the output it forwards within the host's credit, the input it
//! takes within the window it granted, and when it is over (PROTOCOL.md, EXEC and flow control).

use super::exec::Child;
use super::frame::{self, MAX_PAYLOAD};
use super::io::{self, Got};
use super::messages::{self, Ended};
use super::outbox::Outbox;
use super::window::{Credit, Granted};
use std::fs::File;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// After the process ended, how long output may stay open (held by something it left behind)
/// with nothing coming out of it before EXIT is sent anyway.
pub const LINGER: Duration = Duration::from_secs(2);

/// One output direction (STDOUT or STDERR).
pub struct Output {
    kind: u8,
    fd: Option<File>,
    credit: Credit,
}

impl Output {
    fn new(kind: u8, fd: Option<File>) -> Output {
        Output { kind, fd, credit: Credit::default() }
    }

    /// The descriptor to poll for input: open, and with credit to send what it reads.
    pub fn wants_read(&self) -> Option<RawFd> {
        self.fd.as_ref().filter(|_| self.credit.available() > 0).map(|f| f.as_raw_fd())
    }

    fn blocked(&self) -> bool {
        self.fd.is_some() && self.credit.available() == 0
    }
}

pub struct Session {
    pub id: u32,
    pub pid: libc::pid_t,
    stdin: Option<File>,
    /// STDIN bytes accepted but not yet taken by the process.
    queue: Vec<u8>,
    stdin_fin: bool,
    granted: Granted,
    pub out: [Output; 2],
    pty: Option<File>,
    pub ended: Option<Ended>,
    /// Since when the process has ended with its output quiet (reset by output and by stalls).
    quiet_since: Option<Instant>,
}

impl Session {
    pub fn new(id: u32, c: Child) -> Session {
        Session {
            id,
            pid: c.pid,
            stdin: c.stdin,
            queue: Vec::new(),
            stdin_fin: false,
            granted: Granted::default(),
            out: [Output::new(frame::STDOUT, Some(c.stdout)), Output::new(frame::STDERR, c.stderr)],
            pty: c.pty,
            ended: None,
            quiet_since: None,
        }
    }

    /// Read one chunk of output `which` (0 stdout, 1 stderr) and queue it, within the credit.
    pub fn read_output(&mut self, which: usize, buf: &mut [u8], out: &mut Outbox) {
        let id = self.id;
        let o = &mut self.out[which];
        let fd = match &o.fd {
            Some(f) => f.as_raw_fd(),
            None => return,
        };
        let max = buf.len().min(MAX_PAYLOAD).min(o.credit.available() as usize);
        if max == 0 {
            return;
        }
        match io::read(fd, &mut buf[..max]) {
            Got::Data(n) => {
                out.push(o.kind, 0, id, &buf[..n]);
                o.credit.spend(n);
                if self.quiet_since.is_some() {
                    self.quiet_since = Some(Instant::now());
                }
            }
            Got::Again => {}
            Got::End => {
                out.push(o.kind, frame::FIN, id, &[]);
                o.fd = None;
            }
        }
    }

    /// WINDOW from the host for one of our directions.
    pub fn grant(&mut self, kind: u8, increment: u32) {
        if let Some(o) = self.out.iter_mut().find(|o| o.kind == kind) {
            o.credit.grant(increment);
        }
    }

    /// STDIN from the host: false when it exceeds the window granted.
    pub fn accept_stdin(&mut self, data: &[u8], fin: bool, out: &mut Outbox) -> bool {
        if !self.granted.accept(data.len()) {
            return false;
        }
        if self.stdin.is_some() {
            self.queue.extend_from_slice(data);
        } else {
            // Nowhere to go (no stdin, or the process closed it): taken as it arrives.
            self.granted.taken(data.len());
        }
        self.stdin_fin |= fin;
        self.pump_stdin(out);
        true
    }

    /// The descriptor to poll for writing queued STDIN.
    pub fn wants_write(&self) -> Option<RawFd> {
        self.stdin.as_ref().filter(|_| !self.queue.is_empty()).map(|f| f.as_raw_fd())
    }

    /// Write queued STDIN as far as the process takes it, then credit the host; close at FIN.
    pub fn pump_stdin(&mut self, out: &mut Outbox) {
        if let Some(f) = &self.stdin {
            let fd = f.as_raw_fd();
            while !self.queue.is_empty() {
                match io::write(fd, &self.queue) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.queue.drain(..n);
                        self.granted.taken(n);
                    }
                    Err(_) => {
                        // The process closed its stdin: what is left will never be read.
                        self.granted.taken(self.queue.len());
                        self.queue.clear();
                        self.stdin = None;
                        break;
                    }
                }
            }
            if self.queue.is_empty() && self.stdin_fin {
                if self.pty.is_some() {
                    // A terminal has no end of input but the EOF character (^D), read at a line's start.
                    let _ = io::write(fd, &[4]);
                }
                self.stdin = None;
            }
        }
        if let Some(n) = self.granted.credit_due(self.queue.is_empty()) {
            out.push(frame::WINDOW, 0, self.id, &messages::window_payload(frame::STDIN, n));
        }
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        if let Some(p) = &self.pty {
            let _ = super::pty::set_size(p.as_raw_fd(), rows, cols);
        }
    }

    /// A signal to the session's process group, while its leader has not been reaped (after that
    /// the id may belong to someone else).
    pub fn signal(&self, sig: i32) {
        if self.ended.is_none() {
            // SAFETY: kill takes no pointers; -pid is the group setsid made.
            unsafe { libc::kill(-self.pid, sig) };
        }
    }

    /// SIGKILL to the process group: while its leader runs, or after while its output is still held
    /// open (by members left in the group, which keep the group's id from being reused).
    pub fn kill(&self) {
        if self.ended.is_none() || self.out.iter().any(|o| o.fd.is_some()) {
            // SAFETY: kill takes no pointers; -pid is the group setsid made.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
    }

    pub fn exited(&mut self, how: Ended, now: Instant) {
        self.ended = Some(how);
        self.quiet_since = Some(now);
    }

    /// When the poll must wake to end a lingering session.
    pub fn deadline(&self) -> Option<Instant> {
        self.quiet_since.map(|t| t + LINGER)
    }

    /// Over: the process ended and its output reached EOF, or stayed quiet for LINGER (output
    /// waiting for the host's credit, or for room in the outbox, is not quiet).
    pub fn over(&mut self, now: Instant, outbox_full: bool) -> bool {
        if self.ended.is_none() {
            return false;
        }
        if self.out.iter().all(|o| o.fd.is_none()) {
            return true;
        }
        if outbox_full || self.out.iter().any(Output::blocked) {
            self.quiet_since = Some(now);
            return false;
        }
        self.deadline().map(|d| now >= d).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::window::INITIAL_WINDOW;
    use std::os::unix::io::FromRawFd;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: a new pipe, wrapped at once.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK), 0);
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        }
    }

    fn frames(o: &mut Outbox) -> Vec<frame::Frame> {
        let (r, w) = pipe();
        o.flush(&mut crate::channel::outbox::Fd(w.as_raw_fd())).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut d = frame::Decoder::default();
        if let Got::Data(n) = io::read(r.as_raw_fd(), &mut buf) {
            d.push(&buf[..n]);
        }
        let mut v = Vec::new();
        while let Some(f) = d.next() {
            v.push(f.unwrap());
        }
        v
    }

    fn session() -> (Session, File, File, File) {
        let (in_r, in_w) = pipe();
        let (out_r, out_w) = pipe();
        let (err_r, _err_w) = pipe();
        // pid 0 is never signalled: ended is set before any test would.
        let s = Session::new(5, Child { pid: 0, stdin: Some(in_w), stdout: out_r, stderr: Some(err_r), pty: None });
        (s, in_r, out_w, _err_w)
    }

    #[test]
    fn output_stops_at_the_hosts_credit_and_resumes_with_a_window() {
        let (mut s, _in_r, out_w, _e) = session();
        let mut o = Outbox::default();
        let mut buf = vec![0u8; 1 << 16];
        let chunk = vec![b'a'; 60000];
        let mut sent = 0usize;
        // Write more than the window through a pipe, draining it as the session reads.
        for _ in 0..6 {
            let mut w = &out_w;
            let _ = std::io::Write::write(&mut w, &chunk);
            while s.out[0].wants_read().is_some() {
                let before = o.pending();
                s.read_output(0, &mut buf, &mut o);
                if o.pending() == before {
                    break;
                }
            }
            sent = frames(&mut o).iter().map(|f| f.payload.len()).sum::<usize>() + sent;
        }
        assert_eq!(sent, INITIAL_WINDOW as usize, "exactly the window, no more");
        assert!(s.out[0].wants_read().is_none(), "not polled without credit: the process blocks");
        s.grant(frame::STDOUT, 1000);
        s.read_output(0, &mut buf, &mut o);
        assert_eq!(frames(&mut o)[0].payload.len(), 1000);
    }

    #[test]
    fn stdin_within_the_window_is_written_and_credited_and_fin_closes_it() {
        let (mut s, in_r, _out_w, _e) = session();
        let mut o = Outbox::default();
        assert!(s.accept_stdin(b"hello", false, &mut o));
        let mut buf = [0u8; 16];
        assert!(matches!(io::read(in_r.as_raw_fd(), &mut buf), Got::Data(5)));
        let f = frames(&mut o);
        assert_eq!((f[0].kind, messages::window(&f[0].payload)), (frame::WINDOW, Some((frame::STDIN, 5))));
        assert!(s.accept_stdin(b"", true, &mut o));
        assert!(matches!(io::read(in_r.as_raw_fd(), &mut buf), Got::End), "FIN closed the process's stdin");
        assert!(!s.accept_stdin(&vec![0u8; INITIAL_WINDOW as usize + 1], false, &mut o), "past the window");
    }

    #[test]
    fn over_after_eof_or_a_quiet_linger() {
        let (mut s, _in_r, out_w, err_w) = session();
        let mut o = Outbox::default();
        let mut buf = [0u8; 64];
        let t = Instant::now();
        assert!(!s.over(t, false));
        s.exited(Ended::Code(0), t);
        assert!(!s.over(t, false), "output still open");
        assert!(!s.over(t + LINGER, true), "a full outbox is not quiet");
        assert!(!s.over(t + LINGER, false));
        assert!(s.over(t + LINGER + LINGER, false), "quiet for LINGER");
        drop((out_w, err_w));
        s.read_output(0, &mut buf, &mut o);
        s.read_output(1, &mut buf, &mut o);
        let f = frames(&mut o);
        assert!(f.iter().all(|f| f.fin() && f.payload.is_empty()) && f.len() == 2, "EOF is FIN on each: {:?}", f);
        s.exited(Ended::Code(0), t);
        assert!(s.over(t, false));
    }
}
