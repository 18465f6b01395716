//! The image's User (OCI `config.User`, or the Guest's override) resolved against the image's own
//! /etc/passwd and /etc/group, as container runtimes do: `name`, `uid`, `name:group`, `uid:gid`,
//! with the supplementary groups that list the user by name. Both files come from the image, so
//! malformed lines are skipped and sizes are bounded by the caller.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, without duplicates (the primary gid included, as runtimes do).
    pub groups: Vec<u32>,
    pub home: String,
}

fn id(s: &str) -> Option<u32> {
    // Only plain decimal: "+1", " 1" or "1e3" are not ids.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `name:password:uid:gid:gecos:home:shell`; lines that do not fit are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry { name: f[0].to_string(), uid: id(f[2])?, gid: id(f[3])?, home: f[5].to_string() })
        })
        .collect()
}

/// `name:password:gid:member,member`; lines that do not fit are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            let members = f[3].split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect();
            Some(GroupEntry { name: f[0].to_string(), gid: id(f[2])?, members })
        })
        .collect()
}

/// Resolve `spec` ("" means root). Errors name what was not found, for the Guest's status.
pub fn resolve(spec: &str, passwd: &[PasswdEntry], groups: &[GroupEntry]) -> Result<Identity, String> {
    let (user_part, group_part) = match spec.find(':') {
        Some(i) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = match id(user_part) {
        Some(uid) => passwd.iter().find(|p| p.uid == uid).cloned(),
        None => match passwd.iter().find(|p| p.name == user_part) {
            Some(p) => Some(p.clone()),
            None => return Err(format!("user {:?} is not in the image's /etc/passwd", user_part)),
        },
    };
    let uid = match &entry {
        Some(p) => p.uid,
        None => id(user_part).unwrap_or(0),
    };
    let gid = match group_part {
        Some(g) if !g.is_empty() => match id(g) {
            Some(gid) => gid,
            None => match groups.iter().find(|e| e.name == g) {
                Some(e) => e.gid,
                None => return Err(format!("group {:?} is not in the image's /etc/group", g)),
            },
        },
        Some(_) => return Err(format!("user {:?} names an empty group", spec)),
        // A uid the image does not know runs with gid 0, as Docker does.
        None => entry.as_ref().map(|p| p.gid).unwrap_or(0),
    };
    let mut supplementary = vec![gid];
    // An explicit group replaces the user's groups; otherwise every group listing the user by name.
    if group_part.is_none() {
        if let Some(p) = &entry {
            for g in groups.iter().filter(|g| g.members.iter().any(|m| m == &p.name)) {
                if !supplementary.contains(&g.gid) {
                    supplementary.push(g.gid);
                }
            }
        }
    }
    let home = entry.map(|p| p.home).filter(|h| h.starts_with('/')).unwrap_or_else(|| "/".to_string());
    Ok(Identity { uid, gid, groups: supplementary, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\nbroken line\nbad:x:notanumber:1::/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnohome:x:1001:1001:::/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnginx:x:101:\napp:x:1000:\nwww:x:33:app,nginx\nvideo:x:44: app \n";

    fn r(spec: &str) -> Result<Identity, String> {
        resolve(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn parsing_skips_what_does_not_fit() {
        let p = parse_passwd(PASSWD);
        assert_eq!(p.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["root", "nginx", "app", "nohome"]);
        let g = parse_group(GROUP);
        assert_eq!(g[3], GroupEntry { name: "www".into(), gid: 33, members: vec!["app".into(), "nginx".into()] });
        assert_eq!(g[4].members, vec!["app".to_string()]);
    }

    #[test]
    fn by_name_with_supplementary_groups() {
        assert_eq!(r("app").unwrap(), Identity { uid: 1000, gid: 1000, groups: vec![1000, 33, 44], home: "/home/app".into() });
        assert_eq!(r("nginx").unwrap().groups, vec![101, 33]);
    }

    #[test]
    fn numeric_and_explicit_groups() {
        assert_eq!(r("").unwrap(), Identity { uid: 0, gid: 0, groups: vec![0], home: "/root".into() });
        assert_eq!(r("1000").unwrap().gid, 1000);
        assert_eq!(r("4242").unwrap(), Identity { uid: 4242, gid: 0, groups: vec![0], home: "/".into() });
        assert_eq!(r("4242:4343").unwrap(), Identity { uid: 4242, gid: 4343, groups: vec![4343], home: "/".into() });
        assert_eq!(r("app:www").unwrap(), Identity { uid: 1000, gid: 33, groups: vec![33], home: "/home/app".into() });
        assert_eq!(r("nohome").unwrap().home, "/");
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(r("ghost").unwrap_err(), "user \"ghost\" is not in the image's /etc/passwd");
        assert_eq!(r("app:ghosts").unwrap_err(), "group \"ghosts\" is not in the image's /etc/group");
        assert!(r("app:").is_err());
        assert!(r("+1").is_err(), "not a plain number, so a name, and no such user");
    }
}
