//! The resolution PID 1 makes before it executes the container process, as one value.

use crate::config::{self, LaunchConfig};
use crate::{process, users};
use serde_json::json;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

/// /etc/passwd and /etc/group come from the image: read at most this much of each.
pub const MAX_DB_BYTES: usize = 4 << 20;

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

/// Read a file the image or the host supplied, refusing more than `max` bytes.
pub fn read_bounded(path: &str, max: usize) -> Result<String, String> {
    let f = fs::File::open(path).map_err(|e| format!("{}: {}", path, e))?;
    let mut text = String::new();
    f.take(max as u64 + 1).read_to_string(&mut text).map_err(|e| format!("{}: {}", path, e))?;
    if text.len() > max {
        return Err(format!("{}: more than {} bytes", path, max));
    }
    Ok(text)
}

/// The launch config file, read bounded and parsed; errors name the file.
pub fn read_config(path: &str) -> Result<LaunchConfig, String> {
    let text = read_bounded(path, config::MAX_BYTES)?;
    config::parse(&text).map_err(|e| format!("{}: {}", path, e))
}

/// Whether `path` names an executable file inside `root`. Symlinks are followed inside the root
/// (an absolute target is read relative to it), as they will resolve once the root is `/`.
pub fn executable_in(root: &str, path: &str) -> bool {
    let mut current = path.to_string();
    for _ in 0..16 {
        let inside = format!("{}/{}", root, current.trim_start_matches('/'));
        match fs::symlink_metadata(&inside) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&inside) {
                Ok(t) => {
                    let t = t.to_string_lossy().to_string();
                    current = if t.starts_with('/') { t } else { format!("{}/{}", current.rsplit_once('/').map(|x| x.0).unwrap_or(""), t) };
                }
                Err(_) => return false,
            },
            Ok(m) => return m.is_file() && m.permissions().mode() & 0o111 != 0,
            Err(_) => return false,
        }
    }
    false
}

/// Resolve against the image's root directory: its passwd and group (missing, unreadable or too
/// large: empty, so names do not resolve and ids still do) and its executables.
pub fn resolve_in_root(c: &LaunchConfig, root: &str) -> Result<Plan, String> {
    let passwd = read_bounded(&format!("{}/etc/passwd", root), MAX_DB_BYTES).unwrap_or_default();
    let group = read_bounded(&format!("{}/etc/group", root), MAX_DB_BYTES).unwrap_or_default();
    resolve(c, &passwd, &group, |candidate| executable_in(root, candidate))
}

/// `plan CONFIG ROOT`: ROOT is the image's root directory as seen from here.
pub fn plan_files(config_path: &str, root: &str) -> Result<String, String> {
    let p = resolve_in_root(&read_config(config_path)?, root)?;
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
    fn executables_are_found_inside_the_root_through_symlinks() {
        let root = std::env::temp_dir().join(format!("krata-root-{}", std::process::id()));
        let bin = root.join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("busybox"), b"").unwrap();
        fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", bin.join("sh")).unwrap();
        std::os::unix::fs::symlink("busybox", bin.join("ls")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", bin.join("escape")).unwrap();
        let r = root.to_str().unwrap();
        assert!(executable_in(r, "/bin/sh"));
        assert!(executable_in(r, "/bin/ls"));
        assert!(!executable_in(r, "/bin/escape"), "a link out of the root is looked up inside it");
        assert!(!executable_in(r, "/bin/none"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn failures_say_what_is_missing() {
        let c = config::parse(r#"{"version":1,"image":{"cmd":["app"],"user":"ghost"}}"#).unwrap();
        assert!(resolve(&c, "", "", |_| true).unwrap_err().contains("ghost"));
        let c = config::parse(r#"{"version":1,"image":{"cmd":["app"]}}"#).unwrap();
        assert!(resolve(&c, "", "", |_| false).unwrap_err().contains("not found in PATH"));
    }
}
