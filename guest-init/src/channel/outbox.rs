//! Frames waiting for the device: written as far as it takes them, whole frames kept apart so a
//! reset can drop the old conversation's without cutting one in half.

use super::frame;
use super::io;
use std::collections::VecDeque;
use std::os::unix::io::RawFd;

#[derive(Default)]
pub struct Outbox {
    frames: VecDeque<Vec<u8>>,
    /// How much of the front frame the device has taken.
    written: usize,
    bytes: usize,
}

impl Outbox {
    pub fn push(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let f = frame::encode(kind, flags, stream, payload);
        self.bytes += f.len();
        self.frames.push_back(f);
    }

    pub fn json(&mut self, kind: u8, stream: u32, value: &serde_json::Value) {
        self.push(kind, 0, stream, value.to_string().as_bytes());
    }

    /// Bytes still to write.
    pub fn pending(&self) -> usize {
        self.bytes - self.written
    }

    /// Drop every frame not yet begun (a reset: the host will not want them).
    pub fn drop_unstarted(&mut self) {
        let keep = if self.written > 0 { 1 } else { 0 };
        while self.frames.len() > keep {
            if let Some(f) = self.frames.pop_back() {
                self.bytes -= f.len();
            }
        }
    }

    /// Write what the device takes now; Err when it is gone.
    pub fn flush(&mut self, fd: RawFd) -> Result<(), std::io::Error> {
        while let Some(front) = self.frames.front() {
            let n = io::write(fd, &front[self.written..])?;
            if n == 0 {
                return Ok(());
            }
            self.written += n;
            if self.written == front.len() {
                self.bytes -= front.len();
                self.written = 0;
                self.frames.pop_front();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_keeps_the_frame_being_written_whole() {
        let mut fds = [0; 2];
        // SAFETY: a pipe to write into, made non-blocking so a full one is "taken nothing".
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK), 0);
        }
        let mut o = Outbox::default();
        // More than a pipe holds: the first frame is cut by the full pipe.
        for _ in 0..4 {
            o.push(frame::STDOUT, 0, 1, &vec![b'x'; frame::MAX_PAYLOAD]);
        }
        o.flush(fds[1]).unwrap();
        assert!(o.pending() > 0);
        o.drop_unstarted();
        let front_left = o.pending();
        assert!(front_left > 0 && front_left <= frame::HEADER + frame::MAX_PAYLOAD, "only the cut frame's rest: {}", front_left);
        let mut buf = vec![0u8; 1 << 20];
        let mut got = Vec::new();
        while o.pending() > 0 {
            if let io::Got::Data(n) = io::read(fds[0], &mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            o.flush(fds[1]).unwrap();
        }
        if let io::Got::Data(n) = io::read(fds[0], &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        let mut d = frame::Decoder::default();
        d.push(&got);
        let mut frames = 0;
        while let Some(f) = d.next() {
            assert_eq!(f.unwrap().payload.len(), frame::MAX_PAYLOAD);
            frames += 1;
        }
        assert_eq!(frames * (frame::HEADER + frame::MAX_PAYLOAD), got.len(), "only whole frames reached the reader");
        // SAFETY: closing the test's own pipe.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
