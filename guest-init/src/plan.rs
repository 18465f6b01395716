//! The resolution PID 1 makes before it executes the container process, as one value.

use crate::config::{self, LaunchConfig};
use crate::{process, users};
use serde_json::json;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// /etc/passwd and /etc/group come from the image: read at most this much of each.
const MAX_DB_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub identity: users::Identity,
    pub working_dir: String,
}

pub fn resolve(c: &LaunchConfig, passwd: &str, group: &str, is_executable: impl Fn(&str) -> bool) -> Result<Plan, String> {
    let user = c.process.user.clone().unwrap_or_else(|| c.image.user.clone());
    let identity = users::resolve(&user, &users::parse_passwd(passwd), &users::parse_group(group))?;
    let env = process::environment(&c.image, &c.process, &c.hostname, &identity.home);
    let mut argv = process::argv(&c.image, &c.process, &env)?;
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(process::DEFAULT_PATH);
    argv[0] = process::lookup(&argv[0], path, is_executable)?;
    let working_dir = c.process.working_dir.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| if c.image.working_dir.is_empty() { "/".to_string() } else { c.image.working_dir.clone() });
    Ok(Plan { argv, env, identity, working_dir })
}

fn read_bounded(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(f) = fs::File::open(path) {
        // Not valid UTF-8 or unreadable: treated as empty (names then do not resolve, ids still do).
        let _ = f.take(MAX_DB_BYTES).read_to_string(&mut text);
    }
    text
}

/// `plan CONFIG ROOT`: ROOT is the image's root directory as seen from here.
pub fn plan_files(config_path: &str, root: &str) -> Result<String, String> {
    let text = fs::read_to_string(config_path).map_err(|e| format!("{}: {}", config_path, e))?;
    let c = config::parse(&text).map_err(|e| format!("{}: {}", config_path, e))?;
    let root = Path::new(root);
    let passwd = read_bounded(&root.join("etc/passwd"));
    let group = read_bounded(&root.join("etc/group"));
    let p = resolve(&c, &passwd, &group, |candidate| {
        let inside = root.join(candidate.trim_start_matches('/'));
        fs::metadata(inside).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })?;
    Ok(json!({
        "argv": p.argv,
        "env": p.env.iter().map(|(k, v)| format!("{}={}", k, v)).collect::<Vec<_>>(),
        "uid": p.identity.uid,
        "gid": p.identity.gid,
        "groups": p.identity.groups,
        "home": p.identity.home,
        "workingDir": p.working_dir,
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_user_path_and_working_dir_together() {
        let c = config::parse(r#"{"version":1,"hostname":"h","image":{"entrypoint":["nginx"],"user":"nginx","workingDir":"/srv"},"process":{"args":["-g","daemon off;"]}}"#).unwrap();
        let p = resolve(&c, "nginx:x:101:102:n:/var/cache/nginx:/bin/false\n", "nginx:x:102:\nweb:x:7:nginx\n", |p| p == "/usr/sbin/nginx").unwrap();
        assert_eq!(p.argv, vec!["/usr/sbin/nginx", "-g", "daemon off;"]);
        assert_eq!((p.identity.uid, p.identity.gid, p.identity.groups.clone()), (101, 102, vec![102, 7]));
        assert_eq!(p.working_dir, "/srv");
        assert!(p.env.contains(&("HOME".to_string(), "/var/cache/nginx".to_string())));
    }

    #[test]
    fn the_guests_user_overrides_the_images() {
        let c = config::parse(r#"{"version":1,"image":{"cmd":["/bin/true"],"user":"nginx"},"process":{"user":"0:0"}}"#).unwrap();
        let p = resolve(&c, "", "", |_| false).unwrap();
        assert_eq!((p.identity.uid, p.identity.gid), (0, 0));
        assert_eq!(p.working_dir, "/");
    }

    #[test]
    fn failures_say_what_is_missing() {
        let c = config::parse(r#"{"version":1,"image":{"cmd":["app"],"user":"ghost"}}"#).unwrap();
        assert!(resolve(&c, "", "", |_| true).unwrap_err().contains("ghost"));
        let c = config::parse(r#"{"version":1,"image":{"cmd":["app"]}}"#).unwrap();
        assert!(resolve(&c, "", "", |_| false).unwrap_err().contains("not found in PATH"));
    }
}
