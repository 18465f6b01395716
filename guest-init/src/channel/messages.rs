//! The payloads the guest reads and writes: HELLO and its answer, ExecRequest, EXIT, and the small
//! binary ones (WINDOW, RESIZE, SIGNAL). Everything from the host is checked here, before use.

use serde_json::{json, Map, Value};

/// The versions this guest speaks: 1, and 2 (1 plus the bulk ring).
pub const MIN_VERSION: u64 = 1;
pub const MAX_VERSION: u64 = 2;

pub fn software() -> String {
    format!("krata-guest-init {}", env!("CARGO_PKG_VERSION"))
}

pub fn hello() -> Value {
    json!({"role": "guest", "min": MIN_VERSION, "max": MAX_VERSION, "software": software()})
}

/// The highest version both speak, if any.
fn common(min: u64, max: u64) -> Option<u64> {
    let top = max.min(MAX_VERSION);
    if top >= min.max(MIN_VERSION) {
        Some(top)
    } else {
        None
    }
}

/// The answer to a HELLO: the version both speak, or version 0 and why. None: not a host's HELLO
/// (the device may echo our own before it is raw), to be ignored.
pub fn answer_hello(payload: &[u8]) -> Option<(u64, Value)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    if v.get("role").and_then(Value::as_str) != Some("host") {
        return None;
    }
    let (min, max) = (v.get("min").and_then(Value::as_u64), v.get("max").and_then(Value::as_u64));
    if let Some(version) = min.zip(max).and_then(|(min, max)| common(min, max)) {
        return Some((version, json!({"version": version, "software": software()})));
    }
    let range = |x: Option<u64>| x.map(|n| n.to_string()).unwrap_or_else(|| "?".to_string());
    let error = format!("no common version: the guest speaks {}..{}, the host {}..{}", MIN_VERSION, MAX_VERSION, range(min), range(max));
    Some((0, json!({"version": 0, "error": error})))
}

/// The version a HELLO_ACK agreed on: 0 when it carries none, or one this guest does not speak.
pub fn acked_version(payload: &[u8]) -> u64 {
    let version = serde_json::from_slice::<Value>(payload).ok().and_then(|v| v.get("version").and_then(Value::as_u64)).unwrap_or(0);
    if (MIN_VERSION..=MAX_VERSION).contains(&version) {
        version
    } else {
        0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    pub rows: u16,
    pub cols: u16,
}

/// How much of an exec request the guest takes: far beyond any real command, well within a frame.
const MAX_ARGS: usize = 4096;

fn strings(o: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= MAX_ARGS => {
            a.iter().map(|x| x.as_str().map(String::from).ok_or_else(|| format!("{}: not a list of strings", key))).collect()
        }
        Some(_) => Err(format!("{}: not a list of strings", key)),
    }
}

fn opt_string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{}: not a string", key)),
    }
}

fn flag(o: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{}: not a boolean", key)),
    }
}

fn size(o: &Map<String, Value>, key: &str, default: u16) -> Result<u16, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| *n <= u16::MAX as u64).map(|n| n as u16).ok_or_else(|| format!("{}: not a size", key)),
    }
}

pub fn parse_exec(payload: &[u8]) -> Result<ExecRequest, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("exec request: {}", e))?;
    let o = v.as_object().ok_or("exec request: not an object")?;
    let argv = strings(o, "argv")?;
    if argv.is_empty() || argv[0].is_empty() {
        return Err("argv: empty".to_string());
    }
    let mut env = Vec::new();
    for kv in strings(o, "env")? {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
            _ => return Err(format!("env: {:?} is not K=V", kv)),
        }
    }
    let cwd = opt_string(o, "cwd")?;
    let user = opt_string(o, "user")?;
    let (tty, stdin) = (flag(o, "tty")?, flag(o, "stdin")?);
    Ok(ExecRequest { argv, env, cwd, user, tty, stdin, rows: size(o, "rows", 24)?, cols: size(o, "cols", 80)? })
}

/// `base` with `over`'s entries set over it (replacing, in place, or appended).
pub fn merge_env(base: &[(String, String)], over: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = base.to_vec();
    for (k, v) in over {
        match env.iter_mut().find(|(name, _)| name == k) {
            Some(e) => e.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

pub fn exit(how: Ended) -> Value {
    match how {
        Ended::Code(c) => json!({"exitCode": c}),
        Ended::Signal(s) => json!({"signal": s}),
    }
}

pub fn exit_error(error: &str, code: i32) -> Value {
    json!({"error": error, "exitCode": code})
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([p[at], p[at + 1]])
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// WINDOW: (data type credited, increment). The codec has checked the length.
pub fn window(p: &[u8]) -> Option<(u8, u32)> {
    if p.len() != 8 {
        return None;
    }
    Some((p[0], u32_at(p, 4)))
}

pub fn window_payload(kind: u8, increment: u32) -> Vec<u8> {
    let mut p = vec![kind, 0, 0, 0];
    p.extend_from_slice(&increment.to_le_bytes());
    p
}

/// RESIZE: (rows, cols).
pub fn resize(p: &[u8]) -> Option<(u16, u16)> {
    if p.len() != 4 {
        return None;
    }
    Some((u16_at(p, 0), u16_at(p, 2)))
}

/// SIGNAL: a signal number in 1..31, the only ones a session may be sent.
pub fn signal(p: &[u8]) -> Option<i32> {
    if p.len() != 4 {
        return None;
    }
    let n = u32_at(p, 0);
    if (1..=31).contains(&n) {
        Some(n as i32)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_says_1_to_2_and_answers_by_range() {
        let h = hello();
        assert_eq!((h["role"].as_str(), h["min"].as_u64(), h["max"].as_u64()), (Some("guest"), Some(1), Some(2)));
        assert!(h["software"].as_str().unwrap().starts_with("krata-guest-init "));
        let agreed = |host: &str| answer_hello(host.as_bytes()).map(|(v, ack)| (v, ack["version"].as_u64()));
        assert_eq!(agreed(r#"{"role":"host","min":1,"max":1,"software":"a"}"#), Some((1, Some(1))), "a version-1 host");
        assert_eq!(agreed(r#"{"role":"host","min":1,"max":2,"software":"a"}"#), Some((2, Some(2))));
        assert_eq!(agreed(r#"{"role":"host","min":1,"max":3,"software":"a"}"#), Some((2, Some(2))), "the highest common one");
        assert_eq!(agreed(r#"{"role":"host","min":2,"max":2,"software":"a"}"#), Some((2, Some(2))));
        let (v, ack) = answer_hello(br#"{"role":"host","min":3,"max":4,"software":"a"}"#).unwrap();
        assert_eq!((v, ack["version"].as_u64()), (0, Some(0)));
        assert!(ack["error"].as_str().unwrap().contains("1..2") && ack["error"].as_str().unwrap().contains("3..4"));
        assert_eq!(agreed(r#"{"role":"host","min":2,"max":1,"software":"a"}"#), Some((0, Some(0))), "an empty range");
        assert_eq!(answer_hello(&serde_json::to_vec(&hello()).unwrap()), None, "our own HELLO echoed back");
        assert_eq!(answer_hello(br#"{"role":"host"}"#).unwrap().0, 0);
        let acked = |p: &str| acked_version(p.as_bytes());
        assert_eq!((acked(r#"{"version":1}"#), acked(r#"{"version":2}"#), acked(r#"{"version":3}"#)), (1, 2, 0));
        assert_eq!((acked(r#"{"version":0,"error":"x"}"#), acked("{}")), (0, 0));
    }

    #[test]
    fn exec_requests() {
        let full = r#"{"argv":["sh","-c","echo hi"],"env":["K=V","E=","X=a=b"],"cwd":"/srv","user":"1000:1000","tty":true,"stdin":true,"#;
        let r = parse_exec(format!("{}{}", full, r#""rows":50,"cols":132}"#).as_bytes()).unwrap();
        assert_eq!(r.argv, vec!["sh", "-c", "echo hi"]);
        assert_eq!(r.env, vec![("K".into(), "V".into()), ("E".into(), "".into()), ("X".into(), "a=b".into())]);
        assert_eq!((r.cwd.as_deref(), r.user.as_deref()), (Some("/srv"), Some("1000:1000")));
        assert_eq!((r.tty, r.stdin, r.rows, r.cols), (true, true, 50, 132));
        let r = parse_exec(br#"{"argv":["true"],"tty":false,"stdin":false}"#).unwrap();
        assert_eq!((r.cwd, r.user, r.tty, r.stdin, r.rows, r.cols), (None, None, false, false, 24, 80));
        let bad_ones = [
            r#"{}"#,
            r#"{"argv":[]}"#,
            r#"{"argv":[""]}"#,
            r#"{"argv":"sh"}"#,
            r#"{"argv":["sh",1]}"#,
            r#"{"argv":["sh"],"env":["NOEQ"]}"#,
            r#"{"argv":["sh"],"env":["=v"]}"#,
            r#"{"argv":["sh"],"tty":"yes"}"#,
            r#"{"argv":["sh"],"rows":70000}"#,
            r#"{"argv":["sh"],"cwd":5}"#,
            "[1]",
        ];
        for bad in bad_ones {
            assert!(parse_exec(bad.as_bytes()).is_err(), "{}", bad);
        }
    }

    #[test]
    fn env_overrides_replace_in_place() {
        let base = vec![("PATH".to_string(), "/bin".to_string()), ("HOME".to_string(), "/".to_string())];
        let env = merge_env(&base, &[("HOME".into(), "/root".into()), ("NEW".into(), "1".into())]);
        assert_eq!(env, vec![("PATH".into(), "/bin".into()), ("HOME".into(), "/root".into()), ("NEW".into(), "1".into())]);
    }

    #[test]
    fn binary_payloads() {
        assert_eq!(window(&window_payload(0x21, 65536)), Some((0x21, 65536)));
        assert_eq!(window(&[0x21, 0, 0, 0, 0, 0, 1, 0]), Some((0x21, 65536)), "the vector");
        assert_eq!(resize(&[0x32, 0, 0x84, 0]), Some((50, 132)));
        assert_eq!(signal(&[15, 0, 0, 0]), Some(15));
        assert_eq!((signal(&[0, 0, 0, 0]), signal(&[32, 0, 0, 0]), signal(&[15, 0, 0, 1])), (None, None, None));
        assert_eq!(exit(Ended::Signal(15)).to_string(), r#"{"signal":15}"#);
        assert_eq!(exit(Ended::Code(7)).to_string(), r#"{"exitCode":7}"#);
    }
}
