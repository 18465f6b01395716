//! The frame codec (contracts/guest-channel/PROTOCOL.md, "Frames"): a 12-byte header, `KC`, type,
//! flags (FIN only), stream, length (at most MAX_PAYLOAD), then the payload. Decoding checks the
//! header and that a payload has its type's shape, so the server only ever sees well-formed frames.

pub const MAGIC: [u8; 2] = [0x4b, 0x43];
pub const HEADER: usize = 12;
pub const MAX_PAYLOAD: usize = 32768;
pub const FIN: u8 = 1;

pub const HELLO: u8 = 0x01;
pub const HELLO_ACK: u8 = 0x02;
/// Version 2 (PROTOCOL.md, "Bulk ring"): the guest's ring, offered once up, and the switch onto it.
pub const BULK_OFFER: u8 = 0x03;
pub const BULK_SWITCH: u8 = 0x04;
pub const EXEC: u8 = 0x10;
pub const STARTED: u8 = 0x11;
pub const EXIT: u8 = 0x12;
pub const STDIN: u8 = 0x20;
pub const STDOUT: u8 = 0x21;
pub const STDERR: u8 = 0x22;
pub const WINDOW: u8 = 0x23;
pub const RESIZE: u8 = 0x24;
pub const SIGNAL: u8 = 0x25;
pub const CLOSE: u8 = 0x26;
pub const METRICS_REQUEST: u8 = 0x30;
pub const METRICS: u8 = 0x31;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn fin(&self) -> bool {
        self.flags & FIN != 0
    }
}

/// What a payload must look like for each known type; None for an unknown type.
enum Shape {
    Json,
    Bytes,
    Exactly(usize),
}

fn shape(kind: u8) -> Option<Shape> {
    match kind {
        HELLO | HELLO_ACK | BULK_OFFER | EXEC | STARTED | EXIT | METRICS => Some(Shape::Json),
        STDIN | STDOUT | STDERR => Some(Shape::Bytes),
        WINDOW => Some(Shape::Exactly(8)),
        RESIZE | SIGNAL => Some(Shape::Exactly(4)),
        BULK_SWITCH | CLOSE | METRICS_REQUEST => Some(Shape::Exactly(0)),
        _ => None,
    }
}

/// Only data frames may carry FIN.
fn may_fin(kind: u8) -> bool {
    matches!(kind, STDIN | STDOUT | STDERR)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Magic,
    Flags(u8),
    TooLong(u32),
    UnknownType(u8),
    Payload(u8),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            FrameError::Magic => write!(f, "bad magic"),
            FrameError::Flags(x) => write!(f, "flags 0x{:02x} not allowed", x),
            FrameError::TooLong(n) => write!(f, "length {} over {}", n, MAX_PAYLOAD),
            FrameError::UnknownType(t) => write!(f, "unknown type 0x{:02x}", t),
            FrameError::Payload(t) => write!(f, "payload of type 0x{:02x} is malformed", t),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Decode one frame from the front of `buf`: Ok(None) when more bytes are needed, else the frame and
/// how many bytes it took. Header errors are reported as soon as the header is complete.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    if buf[0..2] != MAGIC {
        return Err(FrameError::Magic);
    }
    let (kind, flags) = (buf[2], buf[3]);
    let stream = u32_at(buf, 4);
    let length = u32_at(buf, 8);
    let shape = shape(kind).ok_or(FrameError::UnknownType(kind))?;
    if flags & !FIN != 0 || (flags & FIN != 0 && !may_fin(kind)) {
        return Err(FrameError::Flags(flags));
    }
    if length as usize > MAX_PAYLOAD {
        return Err(FrameError::TooLong(length));
    }
    let total = HEADER + length as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[HEADER..total];
    let ok = match shape {
        Shape::Json => matches!(serde_json::from_slice::<serde_json::Value>(payload), Ok(serde_json::Value::Object(_))),
        Shape::Bytes => true,
        Shape::Exactly(n) => payload.len() == n,
    };
    if !ok {
        return Err(FrameError::Payload(kind));
    }
    Ok(Some((Frame { kind, flags, stream, payload: payload.to_vec() }, total)))
}

/// One frame's bytes. The caller keeps `payload` within MAX_PAYLOAD.
pub fn encode(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Bytes read from the device, split into frames. After a malformed frame it resynchronises on the
/// next magic followed by HELLO: the host restarts the conversation with one after a restart.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`: consumed bytes are dropped once per push, not per frame.
    start: usize,
    resync: bool,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, an error (once per bad spot), or None when more bytes are needed.
    pub fn next(&mut self) -> Option<Result<Frame, FrameError>> {
        let rest = &self.buf[self.start..];
        if self.resync {
            match rest.windows(3).position(|w| w[0..2] == MAGIC && w[2] == HELLO) {
                Some(i) => {
                    self.start += i;
                    self.resync = false;
                }
                None => {
                    // Keep a possible start of the magic for the next read.
                    self.start += rest.len().saturating_sub(2);
                    return None;
                }
            }
        }
        match decode(&self.buf[self.start..]) {
            Ok(Some((frame, used))) => {
                self.start += used;
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => {
                // Step past this spot so the search does not find the same magic again.
                self.start += 1;
                self.resync = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../../contracts/guest-channel/vectors.json");

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn vectors(kind: &str) -> Vec<Value> {
        let v: Value = serde_json::from_str(VECTORS).unwrap();
        v[kind].as_array().unwrap().clone()
    }

    #[test]
    fn valid_vectors_decode_to_their_fields_and_encode_back() {
        let valid = vectors("valid");
        assert!(valid.len() >= 11);
        for v in valid {
            let name = v["name"].as_str().unwrap();
            let bytes = hex(v["frame"].as_str().unwrap());
            let (f, used) = decode(&bytes).unwrap_or_else(|e| panic!("{}: {}", name, e)).expect(name);
            assert_eq!(used, bytes.len(), "{}", name);
            let field = |k: &str| v[k].as_u64().unwrap();
            assert_eq!((f.kind as u64, f.flags as u64, f.stream as u64), (field("type"), field("flags"), field("stream")), "{}", name);
            match v.get("json") {
                Some(json) => assert_eq!(&serde_json::from_slice::<Value>(&f.payload).unwrap(), json, "{}", name),
                None => assert_eq!(f.payload, hex(v["hex"].as_str().unwrap()), "{}", name),
            }
            assert_eq!(encode(f.kind, f.flags, f.stream, &f.payload), bytes, "{}", name);
        }
    }

    #[test]
    fn malformed_vectors_are_rejected() {
        let malformed = vectors("malformed");
        assert!(malformed.len() >= 5);
        for v in malformed {
            let bytes = hex(v["frame"].as_str().unwrap());
            assert!(decode(&bytes).is_err(), "{}", v["name"]);
        }
    }

    #[test]
    fn bounds_and_flags() {
        let max = encode(STDOUT, FIN, 9, &vec![7u8; MAX_PAYLOAD]);
        assert_eq!(decode(&max).unwrap().unwrap().0.payload.len(), MAX_PAYLOAD);
        assert_eq!(decode(&max[..max.len() - 1]), Ok(None), "a truncated frame waits for the rest");
        assert_eq!(decode(&encode(EXIT, FIN, 1, b"{}")), Err(FrameError::Flags(FIN)), "FIN only on data frames");
        assert_eq!(decode(&encode(WINDOW, 0, 1, &[0x21, 0, 0, 0])), Err(FrameError::Payload(WINDOW)));
        assert_eq!(decode(&encode(EXEC, 0, 1, b"[1]")), Err(FrameError::Payload(EXEC)), "JSON payloads are objects");
        assert_eq!(decode(&encode(BULK_SWITCH, 0, 0, &[])).unwrap().unwrap().0.kind, BULK_SWITCH, "the host's switch");
        assert_eq!(decode(&encode(BULK_SWITCH, 0, 0, &[0])), Err(FrameError::Payload(BULK_SWITCH)), "an empty payload");
        assert_eq!(decode(&encode(BULK_OFFER, 0, 0, b"[]")), Err(FrameError::Payload(BULK_OFFER)));
    }

    #[test]
    fn decoder_splits_joins_and_resynchronises() {
        let a = encode(STDIN, 0, 1, b"abc");
        let hello = encode(HELLO, 0, 0, br#"{"role":"host","min":1,"max":1,"software":"x"}"#);
        let mut d = Decoder::default();
        // Half a frame (the tail of a conversation an agent restart cut), garbage, then a HELLO.
        d.push(&a[5..]);
        d.push(&a);
        for b in hello.iter() {
            d.push(&[*b]);
        }
        assert!(matches!(d.next(), Some(Err(FrameError::Magic))));
        assert_eq!(d.next().unwrap().unwrap().kind, HELLO, "resynchronised on the HELLO");
        assert!(d.next().is_none());
        d.push(&a[..4]);
        assert!(d.next().is_none());
        d.push(&a[4..]);
        assert_eq!(d.next().unwrap().unwrap().payload, b"abc");
    }
}
