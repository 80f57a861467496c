//! Who the program runs as (`run --user NAME|UID`, or the invoking user under
//! `sudo`), resolved before `fork`: the child only makes raw `setgroups`,
//! `setresgid`, `setresuid` and capability calls on what is prepared here.
//!
//! Pure parts (which user to pick, the environment it gets, the words for the
//! layers line) are separate from the look-ups (passwd, group list, the
//! kernel's last capability) and unit-tested.

use std::ffi::{CString, OsString};

/// What `--user` (or its absence) asks for, before any look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Run the program as sockstrace runs (root keeps root).
    Keep,
    /// Switch to this user (a name, or a uid in digits).
    Switch { user: String, from_sudo: Option<SudoIds> },
}

/// `SUDO_UID` / `SUDO_GID` as sudo set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SudoIds {
    pub uid: u32,
    pub gid: Option<u32>,
}

/// Picks who the program runs as: `--user` wins; without it, a root
/// sockstrace started by `sudo` runs the program as the invoking user.
pub fn choose(explicit: Option<&str>, euid: u32, sudo_uid: Option<&str>, sudo_gid: Option<&str>) -> Choice {
    if let Some(user) = explicit {
        return Choice::Switch { user: user.to_owned(), from_sudo: None };
    }
    if euid != 0 {
        return Choice::Keep;
    }
    match sudo_uid.and_then(|u| u.trim().parse::<u32>().ok()) {
        Some(uid) if uid != 0 => Choice::Switch {
            user: uid.to_string(),
            from_sudo: Some(SudoIds { uid, gid: sudo_gid.and_then(|g| g.trim().parse().ok()) }),
        },
        _ => Choice::Keep,
    }
}

/// The user the program runs as, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary group among them, as `getgrouplist` gives).
    pub groups: Vec<u32>,
    pub name: String,
    pub home: OsString,
    pub shell: OsString,
}

/// Everything the child needs to become [`Identity`] with no capabilities.
#[derive(Debug, Clone)]
pub struct Switch {
    pub identity: Identity,
    /// `/proc/sys/kernel/cap_last_cap`: the bounding set is cleared up to it.
    pub cap_last_cap: u32,
}

/// Who a program runs as, for a file's mode bits (ACLs are not read).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub uid: u32,
    /// Its groups, the primary one among them.
    pub groups: Vec<u32>,
}

/// Read access, in a mode's bits (`may`).
pub const READ: u32 = 0o4;
/// Write access, in a mode's bits (`may`).
pub const WRITE: u32 = 0o2;

impl Credentials {
    /// The program's: `--user`'s, or ours (effective ids, supplementary groups).
    pub fn of_program(user: Option<&Switch>) -> Credentials {
        match user {
            Some(switch) => Credentials { uid: switch.identity.uid, groups: switch.identity.groups.clone() },
            None => Credentials {
                uid: nix::unistd::geteuid().as_raw(),
                groups: nix::unistd::getgroups()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|g| g.as_raw())
                    .chain([nix::unistd::getegid().as_raw()])
                    .collect(),
            },
        }
    }

    /// Whether the mode bits give these credentials `access` ([`READ`], [`WRITE`]) to a file of
    /// `owner`, `group` and `mode`: the owner's bits for the owner, the group's for a member,
    /// the others' else. Root always (a program run as root keeps its capabilities).
    pub fn may(&self, access: u32, owner: u32, group: u32, mode: u32) -> bool {
        let class = if self.uid == owner {
            6
        } else if self.groups.contains(&group) {
            3
        } else {
            0
        };
        self.uid == 0 || (mode >> class) & access != 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("--user {0}: no such user")]
    NoSuchUser(String),
    #[error("--user {user}: {err}")]
    Lookup { user: String, err: std::io::Error },
    #[error("--user {0}: only root can run the program as another user")]
    NotRoot(String),
    #[error("cannot read /proc/sys/kernel/cap_last_cap: {0}")]
    CapLastCap(std::io::Error),
}

/// What the program runs as, for the layers line and the JSON summary; `isolated`: under
/// `--isolate-network`, where a root program is root in a user namespace of its own.
pub fn describe(switch: Option<&Identity>, euid: u32, name_of_euid: Option<&str>, isolated: bool) -> String {
    match switch {
        Some(id) => format!("uid {} ({}), no capabilities", id.uid, id.name),
        None if euid == 0 && isolated => {
            "root in a user namespace of its own (no capability over the host's \
                                         namespaces; /proc/sys and /sys read-only; it can write root's files)"
                .to_owned()
        }
        None if euid == 0 => {
            "root (all capabilities: it can leave its cgroup and change the network)".to_owned()
        }
        None => match name_of_euid {
            Some(name) => format!("uid {euid} ({name})"),
            None => format!("uid {euid}"),
        },
    }
}

/// The environment the program gets: the caller's, with `HOME`, `USER`,
/// `LOGNAME` and `SHELL` the target user's (as `sudo` sets them).
pub fn environment(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    id: &Identity,
) -> Vec<(OsString, OsString)> {
    let ours: [(&str, OsString); 4] = [
        ("HOME", id.home.clone()),
        ("USER", id.name.clone().into()),
        ("LOGNAME", id.name.clone().into()),
        ("SHELL", id.shell.clone()),
    ];
    let mut out: Vec<(OsString, OsString)> =
        vars.into_iter().filter(|(k, _)| !ours.iter().any(|(o, _)| k == o)).collect();
    out.extend(ours.into_iter().map(|(k, v)| (OsString::from(k), v)));
    out
}

/// The one line printed when `SUDO_UID` picked the user.
pub fn sudo_notice(id: &Identity) -> String {
    format!(
        "sockstrace: running the program as {} (uid {}) from SUDO_UID; --user root keeps root",
        id.name, id.uid
    )
}

/// Resolves a [`Choice::Switch`] (passwd, group list) and, when it is not
/// root itself, what the child needs to drop every capability. `None`: the
/// program keeps sockstrace's identity (`--user root`, or `--user` naming
/// ourselves when we are not root).
pub fn resolve(user: &str, from_sudo: Option<SudoIds>, euid: u32) -> Result<Option<Switch>, IdentityError> {
    let mut identity = match user.parse::<u32>() {
        Ok(uid) => lookup_uid(uid, user)?,
        Err(_) => lookup_name(user)?,
    };
    if let Some(SudoIds { gid: Some(gid), .. }) = from_sudo {
        if gid != identity.gid {
            identity.gid = gid;
            identity.groups = group_list(&identity.name, gid).unwrap_or_else(|_| vec![gid]);
        }
    }
    // Already who was asked for (`--user root` as root keeps root).
    if identity.uid == euid {
        return Ok(None);
    }
    if euid != 0 {
        return Err(IdentityError::NotRoot(user.to_owned()));
    }
    let cap_last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .map_err(IdentityError::CapLastCap)?
        .trim()
        .parse()
        .map_err(|_| IdentityError::CapLastCap(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    Ok(Some(Switch { identity, cap_last_cap }))
}

/// The name for a uid, if passwd has one (for the layers line).
pub fn name_of(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

fn from_user(u: nix::unistd::User) -> Result<Identity, IdentityError> {
    let groups = group_list(&u.name, u.gid.as_raw())
        .map_err(|e| IdentityError::Lookup { user: u.name.clone(), err: e.into() })?;
    Ok(Identity {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups,
        home: u.dir.into_os_string(),
        shell: u.shell.into_os_string(),
        name: u.name,
    })
}

fn lookup_name(name: &str) -> Result<Identity, IdentityError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => from_user(u),
        Ok(None) => Err(IdentityError::NoSuchUser(name.to_owned())),
        Err(e) => Err(IdentityError::Lookup { user: name.to_owned(), err: e.into() }),
    }
}

fn lookup_uid(uid: u32, asked: &str) -> Result<Identity, IdentityError> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => from_user(u),
        Ok(None) => Err(IdentityError::NoSuchUser(asked.to_owned())),
        Err(e) => Err(IdentityError::Lookup { user: asked.to_owned(), err: e.into() }),
    }
}

fn group_list(name: &str, gid: u32) -> nix::Result<Vec<u32>> {
    let cname = CString::new(name).map_err(|_| nix::errno::Errno::EINVAL)?;
    let groups = nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid))?;
    Ok(groups.into_iter().map(|g| g.as_raw()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_bits_of_the_programs_class_decide() {
        let user = |uid, groups: &[u32]| Credentials { uid, groups: groups.to_vec() };
        let (owner, member, other) = (user(1000, &[100]), user(1001, &[5, 100]), user(65534, &[65534]));
        assert!(owner.may(READ, 1000, 100, 0o600));
        assert!(!owner.may(READ, 1000, 100, 0o200));
        assert!(!member.may(READ, 1000, 100, 0o600));
        assert!(member.may(READ, 1000, 100, 0o640));
        assert!(!other.may(READ, 1000, 100, 0o640));
        assert!(other.may(READ, 1000, 100, 0o604));
        assert!(!owner.may(READ, 1000, 100, 0o044), "the owner's bits decide for the owner");
        assert!(user(0, &[]).may(READ, 1000, 100, 0o000));
        assert!(owner.may(WRITE, 1000, 0, 0o644));
        assert!(!owner.may(WRITE, 1000, 100, 0o464), "the owner's bits decide for the owner");
        assert!(owner.may(WRITE, 0, 100, 0o664));
        assert!(!owner.may(WRITE, 0, 100, 0o646), "the group's bits decide for a member");
        assert!(owner.may(WRITE, 0, 0, 0o602));
        assert!(!owner.may(WRITE, 0, 0, 0o644));
    }

    fn alice() -> Identity {
        Identity {
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27],
            name: "alice".into(),
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
        }
    }

    #[test]
    fn explicit_user_wins_over_sudo() {
        assert_eq!(
            choose(Some("root"), 0, Some("1000"), Some("1000")),
            Choice::Switch { user: "root".into(), from_sudo: None }
        );
    }

    #[test]
    fn sudo_uid_is_the_default_for_root_only() {
        assert_eq!(
            choose(None, 0, Some("1000"), Some("100")),
            Choice::Switch { user: "1000".into(), from_sudo: Some(SudoIds { uid: 1000, gid: Some(100) }) }
        );
        assert_eq!(choose(None, 1000, Some("1000"), None), Choice::Keep, "not root: nothing to switch");
        assert_eq!(choose(None, 0, None, None), Choice::Keep, "root without sudo (CI) keeps root");
        assert_eq!(choose(None, 0, Some("0"), Some("0")), Choice::Keep, "sudo from root");
        assert_eq!(choose(None, 0, Some("junk"), None), Choice::Keep);
    }

    #[test]
    fn environment_is_sudo_like() {
        let vars = [("HOME", "/root"), ("PATH", "/bin"), ("USER", "root"), ("DISPLAY", ":0")]
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = environment(vars, &alice());
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.to_str().unwrap());
        assert_eq!(get("HOME"), Some("/home/alice"));
        assert_eq!(get("USER"), Some("alice"));
        assert_eq!(get("LOGNAME"), Some("alice"));
        assert_eq!(get("SHELL"), Some("/bin/bash"));
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("DISPLAY"), Some(":0"), "the caller's session stays");
        assert_eq!(env.iter().filter(|(k, _)| k == "HOME").count(), 1);
    }

    #[test]
    fn descriptions_say_who_and_what_it_can_do() {
        assert_eq!(describe(Some(&alice()), 0, None, false), "uid 1000 (alice), no capabilities");
        assert_eq!(
            describe(None, 0, Some("root"), false),
            "root (all capabilities: it can leave its cgroup and change the network)"
        );
        assert!(describe(None, 0, Some("root"), true).starts_with("root in a user namespace of its own"));
        assert_eq!(describe(None, 1000, Some("alice"), true), "uid 1000 (alice)");
        assert_eq!(
            sudo_notice(&alice()),
            "sockstrace: running the program as alice (uid 1000) from SUDO_UID; --user root keeps root"
        );
    }

    #[test]
    fn resolves_nobody_and_root() {
        let nobody = lookup_name("nobody").expect("nobody exists here");
        assert_eq!((nobody.uid, nobody.name.as_str()), (65534, "nobody"));
        assert!(nobody.groups.contains(&nobody.gid));
        assert!(resolve("root", None, 0).unwrap().is_none(), "--user root keeps root");
        assert!(matches!(resolve("no-such-user-x", None, 0), Err(IdentityError::NoSuchUser(_))));
        assert!(matches!(resolve("nobody", None, 1000), Err(IdentityError::NotRoot(_))));
        assert!(
            matches!(resolve("root", None, 65534), Err(IdentityError::NotRoot(_))),
            "root is not ours to give"
        );
        assert!(resolve("nobody", None, 65534).unwrap().is_none(), "--user naming ourselves changes nothing");
    }
}
