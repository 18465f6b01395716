//! Frames waiting for the host: written as far as the output takes them, whole frames kept apart
//! so a reset can drop the old conversation's without cutting one in half.
//!
//! The output is a `Sink`: the console's descriptor, or (version 2) the bulk ring. One frame may be
//! marked as the last for its sink (the guest's BULK_SWITCH): `flush` stops right after writing it
//! whole and says so, and the caller changes the sink before flushing the frames queued behind it.

use super::frame;
use super::io;
use std::collections::VecDeque;
use std::os::unix::io::RawFd;

/// Where frames are written: as much as it takes now (0 when full), or Err when it is gone.
pub trait Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, std::io::Error>;
    /// The end of one flush: a sink that batches its wake-ups sends them here.
    fn flushed(&mut self) {}
}

/// A non-blocking descriptor (the console).
pub struct Fd(pub RawFd);

impl Sink for Fd {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, std::io::Error> {
        io::write(self.0, bytes)
    }
}

struct Entry {
    bytes: Vec<u8>,
    /// The last frame for the current sink.
    last: bool,
}

#[derive(Default)]
pub struct Outbox {
    frames: VecDeque<Entry>,
    /// How much of the front frame the sink has taken.
    written: usize,
    bytes: usize,
}

/// What a flush did.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Wrote what the sink took; the rest (if any) waits for it.
    Sink,
    /// Wrote the frame marked last, whole: what follows is for the next sink.
    Switch,
}

impl Outbox {
    fn queue(&mut self, bytes: Vec<u8>, last: bool) {
        self.bytes += bytes.len();
        self.frames.push_back(Entry { bytes, last });
    }

    pub fn push(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.queue(frame::encode(kind, flags, stream, payload), false);
    }

    pub fn json(&mut self, kind: u8, stream: u32, value: &serde_json::Value) {
        self.push(kind, 0, stream, value.to_string().as_bytes());
    }

    /// Queue a frame that is the last on the current sink (frames after it go to the next one).
    pub fn push_last(&mut self, kind: u8, stream: u32, payload: &[u8]) {
        self.queue(frame::encode(kind, 0, stream, payload), true);
    }

    /// Bytes still to write.
    pub fn pending(&self) -> usize {
        self.bytes - self.written
    }

    /// Drop every frame not yet begun (a reset: the host will not want them). The one being
    /// written is finished on the same sink, which then stays: it is no longer marked last.
    pub fn drop_unstarted(&mut self) {
        let keep = if self.written > 0 { 1 } else { 0 };
        while self.frames.len() > keep {
            if let Some(f) = self.frames.pop_back() {
                self.bytes -= f.bytes.len();
            }
        }
        if let Some(front) = self.frames.front_mut() {
            front.last = false;
        }
    }

    /// Drop everything, even a frame half written: its sink is gone, and its rest must not
    /// continue on another one.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.written = 0;
        self.bytes = 0;
    }

    /// Write what the sink takes now, up to and including a frame marked last; Err when it is gone.
    pub fn flush(&mut self, sink: &mut dyn Sink) -> Result<Flushed, std::io::Error> {
        let result = self.write_out(sink);
        sink.flushed();
        result
    }

    fn write_out(&mut self, sink: &mut dyn Sink) -> Result<Flushed, std::io::Error> {
        while let Some(front) = self.frames.front() {
            let n = sink.write(&front.bytes[self.written..])?;
            if n == 0 {
                return Ok(Flushed::Sink);
            }
            self.written += n;
            if self.written == front.bytes.len() {
                let last = front.last;
                self.bytes -= front.bytes.len();
                self.written = 0;
                self.frames.pop_front();
                if last {
                    return Ok(Flushed::Switch);
                }
            }
        }
        Ok(Flushed::Sink)
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
        o.flush(&mut Fd(fds[1])).unwrap();
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
            o.flush(&mut Fd(fds[1])).unwrap();
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

    /// A sink that takes `room` bytes in all, in pieces of at most 5, recording them.
    struct Slow {
        got: Vec<u8>,
        room: usize,
        flushes: usize,
    }

    fn slow(room: usize) -> Slow {
        Slow { got: Vec::new(), room, flushes: 0 }
    }

    impl Sink for Slow {
        fn write(&mut self, bytes: &[u8]) -> Result<usize, std::io::Error> {
            let n = bytes.len().min(self.room).min(5);
            self.got.extend_from_slice(&bytes[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flushed(&mut self) {
            self.flushes += 1;
        }
    }

    fn frames_in(bytes: &[u8]) -> Vec<(u8, u32)> {
        let mut d = frame::Decoder::default();
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(f) = d.next() {
            let f = f.unwrap();
            out.push((f.kind, f.stream));
        }
        out
    }

    #[test]
    fn frames_up_to_the_marked_one_go_to_the_first_sink_in_order_the_rest_to_the_next() {
        let mut o = Outbox::default();
        o.push(frame::STDOUT, 0, 1, b"one");
        o.push(frame::STDOUT, 0, 2, b"two");
        o.push_last(frame::BULK_SWITCH, 0, &[]);
        o.push(frame::STDOUT, 0, 3, b"three");
        let (mut a, mut b) = (slow(1 << 20), slow(1 << 20));
        assert_eq!(o.flush(&mut a).unwrap(), Flushed::Switch);
        assert_eq!(frames_in(&a.got), vec![(frame::STDOUT, 1), (frame::STDOUT, 2), (frame::BULK_SWITCH, 0)], "the marker last, nothing after it");
        // Queued after the switch was written: for the next sink too.
        o.push(frame::STDOUT, 0, 4, b"four");
        assert_eq!(o.flush(&mut b).unwrap(), Flushed::Sink);
        assert_eq!(frames_in(&b.got), vec![(frame::STDOUT, 3), (frame::STDOUT, 4)]);
        assert_eq!((o.pending(), a.flushes, b.flushes), (0, 1, 1));
    }

    #[test]
    fn a_full_sink_stops_the_flush_before_the_marker_is_whole() {
        let mut o = Outbox::default();
        o.push(frame::STDOUT, 0, 1, b"one");
        o.push_last(frame::BULK_SWITCH, 0, &[]);
        o.push(frame::STDOUT, 0, 2, b"two");
        let mut a = slow(frame::HEADER + 3 + 4);
        assert_eq!(o.flush(&mut a).unwrap(), Flushed::Sink, "the switch is cut: not switched yet");
        a.room = 1 << 20;
        assert_eq!(o.flush(&mut a).unwrap(), Flushed::Switch);
        assert_eq!(frames_in(&a.got), vec![(frame::STDOUT, 1), (frame::BULK_SWITCH, 0)]);
        assert_eq!(o.pending(), frame::HEADER + 3, "the frame after the switch waits for the next sink");
    }

    #[test]
    fn a_reset_finishes_a_half_written_switch_on_its_sink_and_clear_drops_everything() {
        let mut o = Outbox::default();
        o.push_last(frame::BULK_SWITCH, 0, &[]);
        o.push(frame::STDOUT, 0, 1, b"later");
        let mut a = slow(5);
        assert_eq!(o.flush(&mut a).unwrap(), Flushed::Sink);
        o.drop_unstarted();
        assert_eq!(o.pending(), frame::HEADER - 5, "only the rest of the cut frame");
        a.room = 1 << 20;
        assert_eq!(o.flush(&mut a).unwrap(), Flushed::Sink, "finished, but no longer the last on its sink");
        assert_eq!(frames_in(&a.got), vec![(frame::BULK_SWITCH, 0)]);
        o.push(frame::STDOUT, 0, 2, b"x");
        let mut b = slow(3);
        assert_eq!(o.flush(&mut b).unwrap(), Flushed::Sink);
        o.clear();
        assert_eq!(o.pending(), 0, "even the half-written frame is gone");
        o.push(frame::STDOUT, 0, 3, b"y");
        let mut c = slow(1 << 20);
        o.flush(&mut c).unwrap();
        assert_eq!(frames_in(&c.got), vec![(frame::STDOUT, 3)], "the next sink starts on a frame boundary");
    }
}
