//! The launch config the host writes for the guest (`/krata/launch.json` in its initramfs), version 1.
//! Format: guest-init/CONFIG.md. Parsed by hand from a JSON value so that every error names the
//! field's path; unknown fields are errors too (a newer host must bump the version instead).

use serde_json::{Map, Value};
use std::fmt;
use std::net::IpAddr;

pub const VERSION: u64 = 1;
/// The file is written by krata's node agent, but it carries the image's config: keep it bounded.
pub const MAX_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings, as in the OCI image config.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessConfig {
    /// Pod `command`: replaces the image's Entrypoint when present.
    pub command: Option<Vec<String>>,
    /// Pod `args`: replaces the image's Cmd when present.
    pub args: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Overrides the image's User (`uid`, `uid:gid`, `name`, `name:group`).
    pub user: Option<String>,
    pub tty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub ip: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub addresses: Vec<Cidr>,
    pub mtu: Option<u32>,
    /// false: checksum and segmentation offloads off (for a userspace network on the host).
    pub offloads: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub to: Cidr,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub interfaces: Vec<Interface>,
    pub routes: Vec<Route>,
    pub nameservers: Vec<IpAddr>,
    pub searches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LaunchConfig {
    pub hostname: String,
    pub image: ImageConfig,
    pub process: ProcessConfig,
    pub network: Network,
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { path: path.to_string(), message: message.into() })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{}.{}", path, key)
    }
}

/// An object whose fields are taken one by one; what is left over is an unknown field.
struct Fields<'a> {
    path: String,
    map: Map<String, Value>,
    _v: std::marker::PhantomData<&'a ()>,
}

impl<'a> Fields<'a> {
    fn new(path: &str, v: Value) -> Result<Self, ConfigError> {
        match v {
            Value::Object(map) => Ok(Fields { path: path.to_string(), map, _v: std::marker::PhantomData }),
            other => err(path, format!("expected an object, got {}", kind(&other))),
        }
    }
    fn take(&mut self, key: &str) -> Option<(String, Value)> {
        self.map.remove(key).filter(|v| !v.is_null()).map(|v| (join(&self.path, key), v))
    }
    fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((p, v)) => string(&p, v).map(Some),
        }
    }
    fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some((p, v)) => strings(&p, v).map(Some),
        }
    }
    fn finish(self) -> Result<(), ConfigError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => err(&join(&self.path, k), "unknown field"),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(path: &str, v: Value) -> Result<String, ConfigError> {
    match v {
        // A NUL would silently cut an execve argument or environment entry short.
        Value::String(s) if s.contains('\0') => err(path, "contains a NUL character"),
        Value::String(s) => Ok(s),
        other => err(path, format!("expected a string, got {}", kind(&other))),
    }
}

fn strings(path: &str, v: Value) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::Array(items) => items.into_iter().enumerate().map(|(i, item)| string(&format!("{}[{}]", path, i), item)).collect(),
        other => err(path, format!("expected an array of strings, got {}", kind(&other))),
    }
}

fn image(path: &str, v: Value) -> Result<ImageConfig, ConfigError> {
    let mut f = Fields::new(path, v)?;
    let c = ImageConfig {
        entrypoint: f.strings("entrypoint")?.unwrap_or_default(),
        cmd: f.strings("cmd")?.unwrap_or_default(),
        env: f.strings("env")?.unwrap_or_default(),
        working_dir: f.string("workingDir")?.unwrap_or_default(),
        user: f.string("user")?.unwrap_or_default(),
    };
    f.finish()?;
    Ok(c)
}

fn env_var(path: &str, v: Value) -> Result<(String, String), ConfigError> {
    let mut f = Fields::new(path, v)?;
    let name = match f.string("name")? {
        Some(n) => n,
        None => return err(&join(path, "name"), "required"),
    };
    if name.is_empty() || name.contains('=') {
        return err(&join(path, "name"), format!("{:?} is not a variable name", name));
    }
    let value = f.string("value")?.unwrap_or_default();
    f.finish()?;
    Ok((name, value))
}

fn process(path: &str, v: Value) -> Result<ProcessConfig, ConfigError> {
    let mut f = Fields::new(path, v)?;
    let command = f.strings("command")?;
    let args = f.strings("args")?;
    let env = match f.take("env") {
        None => Vec::new(),
        Some((p, Value::Array(items))) => items.into_iter().enumerate().map(|(i, item)| env_var(&format!("{}[{}]", p, i), item)).collect::<Result<_, _>>()?,
        Some((p, other)) => return err(&p, format!("expected an array, got {}", kind(&other))),
    };
    let working_dir = f.string("workingDir")?;
    let user = f.string("user")?;
    let tty = match f.take("tty") {
        None => false,
        Some((_, Value::Bool(b))) => b,
        Some((p, other)) => return err(&p, format!("expected a boolean, got {}", kind(&other))),
    };
    f.finish()?;
    if let Some(dir) = &working_dir {
        if !dir.starts_with('/') {
            return err(&join(path, "workingDir"), format!("{:?} is not an absolute path", dir));
        }
    }
    Ok(ProcessConfig { command, args, env, working_dir, user, tty })
}

fn cidr(path: &str, s: &str) -> Result<Cidr, ConfigError> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = match ip.parse() {
        Ok(ip) => ip,
        Err(_) => return err(path, format!("{:?} is not an IP address", s)),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return err(path, format!("{:?}: the prefix length must be 0 to {}", s, max)),
        },
    };
    Ok(Cidr { ip, prefix })
}

fn ip(path: &str, v: Value) -> Result<IpAddr, ConfigError> {
    let s = string(path, v)?;
    s.parse().or_else(|_| err(path, format!("{:?} is not an IP address", s)))
}

fn interface_name(path: &str, v: Value) -> Result<String, ConfigError> {
    let name = string(path, v)?;
    if name.is_empty() || name.len() > 15 || name.contains('/') || name.contains(char::is_whitespace) {
        return err(path, format!("{:?} is not an interface name", name));
    }
    Ok(name)
}

fn array(path: &str, v: Value) -> Result<Vec<Value>, ConfigError> {
    match v {
        Value::Array(items) => Ok(items),
        other => err(path, format!("expected an array, got {}", kind(&other))),
    }
}

fn network(path: &str, v: Value) -> Result<Network, ConfigError> {
    let mut f = Fields::new(path, v)?;
    let mut n = Network::default();
    if let Some((p, v)) = f.take("interfaces") {
        for (i, item) in array(&p, v)?.into_iter().enumerate() {
            let ip_ = format!("{}[{}]", p, i);
            let mut g = Fields::new(&ip_, item)?;
            let name = match g.take("name") {
                Some((q, v)) => interface_name(&q, v)?,
                None => return err(&join(&ip_, "name"), "required"),
            };
            let addresses = match g.take("addresses") {
                None => Vec::new(),
                Some((q, v)) => strings(&q, v)?.iter().enumerate().map(|(j, a)| cidr(&format!("{}[{}]", q, j), a)).collect::<Result<_, _>>()?,
            };
            let mtu = match g.take("mtu") {
                None => None,
                Some((q, Value::Number(m))) => match m.as_u64() {
                    Some(m) if (68..=65535).contains(&m) => Some(m as u32),
                    _ => return err(&q, format!("{} is not an MTU (68 to 65535)", m)),
                },
                Some((q, other)) => return err(&q, format!("expected a number, got {}", kind(&other))),
            };
            let offloads = match g.take("offloads") {
                None => true,
                Some((_, Value::Bool(b))) => b,
                Some((q, other)) => return err(&q, format!("expected a boolean, got {}", kind(&other))),
            };
            g.finish()?;
            n.interfaces.push(Interface { name, addresses, mtu, offloads });
        }
    }
    if let Some((p, v)) = f.take("routes") {
        for (i, item) in array(&p, v)?.into_iter().enumerate() {
            let rp = format!("{}[{}]", p, i);
            let mut g = Fields::new(&rp, item)?;
            let via = match g.take("via") {
                Some((q, v)) => Some(ip(&q, v)?),
                None => None,
            };
            let dev = match g.take("dev") {
                Some((q, v)) => Some(interface_name(&q, v)?),
                None => None,
            };
            let to = match g.string("to")? {
                None => return err(&join(&rp, "to"), "required"),
                Some(t) if t == "default" => match via {
                    Some(IpAddr::V4(_)) => Cidr { ip: "0.0.0.0".parse().unwrap(), prefix: 0 },
                    Some(IpAddr::V6(_)) => Cidr { ip: "::".parse().unwrap(), prefix: 0 },
                    None => return err(&join(&rp, "via"), "a default route needs a gateway"),
                },
                Some(t) => cidr(&join(&rp, "to"), &t)?,
            };
            if let Some(gw) = via {
                if gw.is_ipv4() != to.ip.is_ipv4() {
                    return err(&join(&rp, "via"), format!("{} is not of the same family as {}", gw, to.ip));
                }
            }
            if via.is_none() && dev.is_none() {
                return err(&rp, "a route needs a gateway (via) or an interface (dev)");
            }
            g.finish()?;
            n.routes.push(Route { to, via, dev });
        }
    }
    if let Some((p, v)) = f.take("nameservers") {
        n.nameservers = array(&p, v)?.into_iter().enumerate().map(|(i, item)| ip(&format!("{}[{}]", p, i), item)).collect::<Result<_, _>>()?;
    }
    n.searches = f.strings("searches")?.unwrap_or_default();
    for (i, s) in n.searches.iter().enumerate() {
        if s.is_empty() || s.contains(char::is_whitespace) {
            return err(&format!("{}.searches[{}]", path, i), format!("{:?} is not a domain name", s));
        }
    }
    f.finish()?;
    Ok(n)
}

pub fn parse(text: &str) -> Result<LaunchConfig, ConfigError> {
    if text.len() > MAX_BYTES {
        return err("", format!("launch config is {} bytes, more than {}", text.len(), MAX_BYTES));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| ConfigError { path: String::new(), message: format!("not JSON: {}", e) })?;
    let mut f = Fields::new("", v)?;
    match f.take("version") {
        Some((_, Value::Number(n))) if n.as_u64() == Some(VERSION) => {}
        Some((p, Value::Number(n))) => return err(&p, format!("launch config version {} is not the version this init reads ({})", n, VERSION)),
        Some((p, other)) => return err(&p, format!("expected a number, got {}", kind(&other))),
        None => return err("version", "required"),
    }
    let hostname = f.string("hostname")?.unwrap_or_default();
    if hostname.len() > 64 {
        return err("hostname", "longer than 64 bytes");
    }
    let image = match f.take("image") {
        Some((p, v)) => image(&p, v)?,
        None => ImageConfig::default(),
    };
    let process = match f.take("process") {
        Some((p, v)) => process(&p, v)?,
        None => ProcessConfig::default(),
    };
    let network = match f.take("network") {
        Some((p, v)) => network(&p, v)?,
        None => Network::default(),
    };
    let shutdown_grace_seconds = match f.take("shutdownGraceSeconds") {
        None => 30,
        Some((p, Value::Number(n))) => match n.as_u64() {
            Some(s) => s,
            None => return err(&p, format!("{} is not a whole number of seconds", n)),
        },
        Some((p, other)) => return err(&p, format!("expected a number, got {}", kind(&other))),
    };
    f.finish()?;
    Ok(LaunchConfig { hostname, image, process, network, shutdown_grace_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config() {
        let c = parse(
            r#"{"version":1,"hostname":"web-0",
                "image":{"entrypoint":["/docker-entrypoint.sh"],"cmd":["nginx","-g","daemon off;"],"env":["PATH=/usr/bin:/bin","NGINX_VERSION=1.25"],"workingDir":"/srv","user":"101:101"},
                "process":{"args":["nginx","-T"],"env":[{"name":"MODE","value":"prod"},{"name":"EMPTY"}],"workingDir":"/tmp","tty":true},
                "shutdownGraceSeconds":10}"#,
        )
        .unwrap();
        assert_eq!(c.hostname, "web-0");
        assert_eq!(c.image.cmd, vec!["nginx", "-g", "daemon off;"]);
        assert_eq!(c.image.user, "101:101");
        assert_eq!(c.process.command, None);
        assert_eq!(c.process.args, Some(vec!["nginx".to_string(), "-T".to_string()]));
        assert_eq!(c.process.env, vec![("MODE".to_string(), "prod".to_string()), ("EMPTY".to_string(), String::new())]);
        assert!(c.process.tty);
        assert_eq!(c.shutdown_grace_seconds, 10);
    }

    #[test]
    fn network_section() {
        let c = parse(
            r#"{"version":1,"network":{"interfaces":[{"name":"eth0","addresses":["10.75.0.2/16","fd00::2/64"],"mtu":1500}],
                "routes":[{"to":"default","via":"10.75.0.1"},{"to":"default","via":"fd00::1"},{"to":"192.168.0.0/24","dev":"eth0"}],
                "nameservers":["10.75.0.1","fd00::1"],"searches":["svc.local"]}}"#,
        )
        .unwrap();
        let n = c.network;
        assert_eq!(n.interfaces[0].addresses[1], Cidr { ip: "fd00::2".parse().unwrap(), prefix: 64 });
        assert_eq!(n.interfaces[0].mtu, Some(1500));
        assert_eq!(n.routes[0].to, Cidr { ip: "0.0.0.0".parse().unwrap(), prefix: 0 });
        assert_eq!(n.routes[1].to, Cidr { ip: "::".parse().unwrap(), prefix: 0 });
        assert_eq!(n.routes[2].dev.as_deref(), Some("eth0"));
        assert_eq!(n.nameservers.len(), 2);
        let cases = [
            (r#"{"version":1,"network":{"interfaces":[{"name":"eth0","addresses":["10.0.0.2/33"]}]}}"#, "network.interfaces[0].addresses[0]: \"10.0.0.2/33\": the prefix length must be 0 to 32"),
            (r#"{"version":1,"network":{"interfaces":[{"name":"eth0","addresses":["10.0.0.300/8"]}]}}"#, "network.interfaces[0].addresses[0]: \"10.0.0.300/8\" is not an IP address"),
            (r#"{"version":1,"network":{"interfaces":[{"name":"a-very-long-interface-name"}]}}"#, "network.interfaces[0].name: \"a-very-long-interface-name\" is not an interface name"),
            (r#"{"version":1,"network":{"routes":[{"to":"default"}]}}"#, "network.routes[0].via: a default route needs a gateway"),
            (r#"{"version":1,"network":{"routes":[{"to":"10.0.0.0/8","via":"fd00::1"}]}}"#, "network.routes[0].via: fd00::1 is not of the same family as 10.0.0.0"),
            (r#"{"version":1,"network":{"interfaces":[{"name":"eth0","mtu":9}]}}"#, "network.interfaces[0].mtu: 9 is not an MTU (68 to 65535)"),
            (r#"{"version":1,"network":{"nameservers":["dns.example"]}}"#, "network.nameservers[0]: \"dns.example\" is not an IP address"),
        ];
        for (text, want) in cases.iter() {
            assert_eq!(parse(text).unwrap_err().to_string(), *want, "{}", text);
        }
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"version":1}"#).unwrap();
        assert_eq!(c.shutdown_grace_seconds, 30);
        assert_eq!(c.process, ProcessConfig::default());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"version":2}"#, "version: launch config version 2 is not the version this init reads (1)"),
            (r#"{}"#, "version: required"),
            (r#"{"version":1,"image":{"cmd":["a",3]}}"#, "image.cmd[1]: expected a string, got a number"),
            (r#"{"version":1,"process":{"env":[{"value":"x"}]}}"#, "process.env[0].name: required"),
            (r#"{"version":1,"process":{"env":[{"name":"A=B"}]}}"#, "process.env[0].name: \"A=B\" is not a variable name"),
            (r#"{"version":1,"process":{"workingDir":"srv"}}"#, "process.workingDir: \"srv\" is not an absolute path"),
            (r#"{"version":1,"process":{"comand":["x"]}}"#, "process.comand: unknown field"),
            (r#"{"version":1,"process":{"tty":"yes"}}"#, "process.tty: expected a boolean, got a string"),
            (r#"{"version":1,"image":{"cmd":["a\u0000b"]}}"#, "image.cmd[0]: contains a NUL character"),
            (r#"{"version":1,"shutdownGraceSeconds":-1}"#, "shutdownGraceSeconds: -1 is not a whole number of seconds"),
            (r#"[1]"#, "expected an object, got an array"),
        ];
        for (text, want) in cases.iter() {
            assert_eq!(parse(text).unwrap_err().to_string(), *want, "{}", text);
        }
        assert!(parse("{").unwrap_err().to_string().starts_with("not JSON"));
        assert!(parse(&" ".repeat(MAX_BYTES + 1)).unwrap_err().to_string().contains("more than"));
    }
}
