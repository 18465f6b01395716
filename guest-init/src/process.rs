//! What the container process is: argv from the image's Entrypoint/Cmd under Pod command/args
//! semantics (with Kubernetes' `$(VAR)` expansion), its environment, and the PATH lookup of argv[0].

use crate::config::{ImageConfig, ProcessConfig};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Kubernetes' rules: `command` replaces the Entrypoint, `args` replaces the Cmd, and `command`
/// without `args` drops the image's Cmd. Empty lists count as absent, as in the Pod API.
pub fn argv(image: &ImageConfig, process: &ProcessConfig, env: &[(String, String)]) -> Result<Vec<String>, String> {
    let command = process.command.as_ref().filter(|c| !c.is_empty());
    let args = process.args.as_ref().filter(|a| !a.is_empty());
    let mut argv: Vec<String> = match (command, args) {
        (Some(c), Some(a)) => c.iter().chain(a.iter()).cloned().collect(),
        (Some(c), None) => c.clone(),
        (None, Some(a)) => image.entrypoint.iter().chain(a.iter()).cloned().collect(),
        (None, None) => image.entrypoint.iter().chain(image.cmd.iter()).cloned().collect(),
    };
    if argv.is_empty() {
        return Err("no command: the image has no Entrypoint or Cmd and the Guest sets no command".to_string());
    }
    // Only what the Guest wrote is expanded, never the image's own strings (kubelet does the same:
    // it does not know the image config).
    let from_spec = command.map(|c| c.len()).unwrap_or(0) + args.map(|a| a.len()).unwrap_or(0);
    let first_spec = if command.is_some() { 0 } else { argv.len() - from_spec };
    for arg in argv.iter_mut().skip(first_spec) {
        *arg = expand(arg, env);
    }
    Ok(argv)
}

/// `$(NAME)` becomes NAME's value when defined and stays as written otherwise; `$$` is a literal `$`.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The image's env, then the Guest's (each value expanded against the Guest's variables defined
/// before it), then defaults for what is still unset: PATH, HOSTNAME, HOME, and TERM with a TTY.
pub fn environment(image: &ImageConfig, process: &ProcessConfig, hostname: &str, home: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env.iter_mut().find(|(name, _)| *name == k) {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    };
    for kv in &image.env {
        // OCI env entries are KEY=value; an entry without '=' has no value to give.
        if let Some(i) = kv.find('=') {
            if i > 0 {
                set(&mut env, kv[..i].to_string(), kv[i + 1..].to_string());
            }
        }
    }
    let mut spec: Vec<(String, String)> = Vec::new();
    for (k, v) in &process.env {
        let value = expand(v, &spec);
        spec.push((k.clone(), value.clone()));
        set(&mut env, k.clone(), value);
    }
    let defaults = [("PATH", DEFAULT_PATH), ("HOSTNAME", hostname), ("HOME", home)];
    for (k, v) in defaults.iter() {
        if !env.iter().any(|(name, _)| name == k) {
            env.push((k.to_string(), v.to_string()));
        }
    }
    if process.tty && !env.iter().any(|(name, _)| name == "TERM") {
        env.push(("TERM".to_string(), "xterm".to_string()));
    }
    env
}

/// argv[0] as execve needs it: as given when it contains a '/', else the first PATH entry holding
/// an executable of that name (relative PATH entries are ignored: they would depend on the cwd).
pub fn lookup(name: &str, path: &str, is_executable: impl Fn(&str) -> bool) -> Result<String, String> {
    if name.contains('/') {
        return Ok(name.to_string());
    }
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{}", dir.trim_end_matches('/'), name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!("{:?}: executable file not found in PATH ({})", name, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig { entrypoint: vec!["/entry".into()], cmd: vec!["serve".into(), "--port=80".into()], ..Default::default() }
    }
    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pod_command_and_args_semantics() {
        let env = vec![("PORT".to_string(), "8080".to_string())];
        let p = |command: Option<&[&str]>, args: Option<&[&str]>| ProcessConfig { command: command.map(strs), args: args.map(strs), ..Default::default() };
        assert_eq!(argv(&image(), &p(None, None), &env).unwrap(), strs(&["/entry", "serve", "--port=80"]));
        assert_eq!(argv(&image(), &p(Some(&["sh", "-c"]), None), &env).unwrap(), strs(&["sh", "-c"]));
        assert_eq!(argv(&image(), &p(None, Some(&["check"])), &env).unwrap(), strs(&["/entry", "check"]));
        assert_eq!(argv(&image(), &p(Some(&["run"]), Some(&["--port=$(PORT)"])), &env).unwrap(), strs(&["run", "--port=8080"]));
        assert_eq!(argv(&image(), &p(Some(&[]), Some(&[])), &env).unwrap(), strs(&["/entry", "serve", "--port=80"]), "empty lists count as absent");
        let mut no_cmd = image();
        no_cmd.entrypoint.clear();
        no_cmd.cmd.clear();
        assert!(argv(&no_cmd, &p(None, None), &env).is_err());
    }

    #[test]
    fn only_the_guests_strings_are_expanded() {
        let img = ImageConfig { entrypoint: vec!["/entry".into(), "$(PORT)".into()], ..Default::default() };
        let env = vec![("PORT".to_string(), "1".to_string())];
        let p = ProcessConfig { args: Some(strs(&["$(PORT)"])), ..Default::default() };
        assert_eq!(argv(&img, &p, &env).unwrap(), strs(&["/entry", "$(PORT)", "1"]));
    }

    #[test]
    fn expansion_rules() {
        let env = vec![("A".to_string(), "x".to_string()), ("B".to_string(), "y".to_string())];
        assert_eq!(expand("$(A)-$(B)", &env), "x-y");
        assert_eq!(expand("$(MISSING)", &env), "$(MISSING)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("cost: $5 $(A", &env), "cost: $5 $(A");
        assert_eq!(expand("é$(A)ü", &env), "éxü");
    }

    #[test]
    fn environment_layers_and_defaults() {
        let img = ImageConfig { env: strs(&["PATH=/opt/bin:/bin", "LANG=C", "NOVALUE", "=bad"]), ..Default::default() };
        let p = ProcessConfig {
            env: vec![("LANG".into(), "C.UTF-8".into()), ("BASE".into(), "/srv".into()), ("DATA".into(), "$(BASE)/data".into())],
            tty: true,
            ..Default::default()
        };
        let env = environment(&img, &p, "web-0", "/home/app");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/opt/bin:/bin"));
        assert_eq!(get("LANG"), Some("C.UTF-8"));
        assert_eq!(get("DATA"), Some("/srv/data"));
        assert_eq!(get("HOSTNAME"), Some("web-0"));
        assert_eq!(get("HOME"), Some("/home/app"));
        assert_eq!(get("TERM"), Some("xterm"));
        assert_eq!(get("NOVALUE"), None);
        assert_eq!(env.iter().filter(|(n, _)| n == "LANG").count(), 1);
        let plain = environment(&ImageConfig::default(), &ProcessConfig::default(), "h", "/");
        assert_eq!(plain.iter().find(|(n, _)| n == "PATH").unwrap().1, DEFAULT_PATH);
        assert!(plain.iter().all(|(n, _)| n != "TERM"));
    }

    #[test]
    fn path_lookup() {
        let exists = |p: &str| p == "/usr/bin/nginx" || p == "/bin/sh";
        assert_eq!(lookup("nginx", "/usr/local/bin:/usr/bin:/bin", exists).unwrap(), "/usr/bin/nginx");
        assert_eq!(lookup("sh", "relative:/bin/", exists).unwrap(), "/bin/sh");
        assert_eq!(lookup("./run", "/bin", exists).unwrap(), "./run");
        assert!(lookup("nope", "/bin", exists).unwrap_err().contains("not found in PATH"));
    }
}
