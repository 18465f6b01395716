//! The guest's end of xenstore through /dev/xen/xenbus, for what PID 1 tells the host (writes below
//! krata/guest/). Paths without a leading '/' are relative to the guest's home, /local/domain/<domid>.
//! Shutdown requests do not come through here: the kernel handles control/shutdown (runtime.rs).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

pub const XENBUS_PATH: &str = "/dev/xen/xenbus";
const XS_WRITE: u32 = 11;
const XS_WATCH_EVENT: u32 = 15;
const XS_ERROR: u32 = 16;
/// xenstore's own bound on a message payload.
const MAX_PAYLOAD: usize = 4096;

pub struct Xenbus {
    file: File,
    next_req: u32,
}

/// One message: (type, req_id, payload).
fn encode(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + payload.len());
    for v in [ty, req_id, 0, payload.len() as u32] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(payload);
    m
}

fn split_strings(payload: &[u8]) -> Vec<String> {
    payload.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).to_string()).collect()
}

impl Xenbus {
    pub fn open() -> Result<Xenbus, String> {
        let file = OpenOptions::new().read(true).write(true).open(XENBUS_PATH).map_err(|e| format!("{}: {}", XENBUS_PATH, e))?;
        Ok(Xenbus { file, next_req: 1 })
    }

    fn read_message(&mut self) -> Result<(u32, u32, Vec<u8>), String> {
        let mut header = [0u8; 16];
        self.file.read_exact(&mut header).map_err(|e| format!("xenbus read: {}", e))?;
        let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let len = word(12) as usize;
        if len > MAX_PAYLOAD {
            return Err(format!("xenbus: a {} byte message, over xenstore's {}", len, MAX_PAYLOAD));
        }
        let mut payload = vec![0u8; len];
        self.file.read_exact(&mut payload).map_err(|e| format!("xenbus read: {}", e))?;
        Ok((word(0), word(4), payload))
    }

    fn request(&mut self, ty: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        // One write per message: the device takes whole messages.
        self.file.write_all(&encode(ty, req, payload)).map_err(|e| format!("xenbus write: {}", e))?;
        loop {
            let (t, id, body) = self.read_message()?;
            if t == XS_WATCH_EVENT || id != req {
                continue; // not the reply to this request (the kernel's own watches use their own connection)
            }
            if t == XS_ERROR {
                return Err(split_strings(&body).into_iter().next().unwrap_or_default());
            }
            return Ok(body);
        }
    }

    pub fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        self.request(XS_WRITE, &p).map(|_| ()).map_err(|e| format!("xenstore write {}: {}", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_header_then_payload() {
        let m = encode(XS_WRITE, 7, b"control/shutdown\0");
        assert_eq!(&m[..16], &[11, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0]);
        assert_eq!(&m[16..], b"control/shutdown\0");
        assert_eq!(split_strings(b"E2BIG\0"), vec!["E2BIG", ""]);
    }
}
