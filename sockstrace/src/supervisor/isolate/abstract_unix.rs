//! The abstract unix socket bridge: abstract names are per network
//! namespace, so X11's `@/tmp/.X11-unix/X<n>` and D-Bus buses on
//! `unix:abstract=` addresses are not found from the program's namespace.
//!
//! For each bridged name the child listens on the same abstract name in the
//! program's namespace (before exec); each connection accepted there is
//! relayed to the name in the host's namespace, a byte copy each way. What a
//! copy cannot carry does not cross: ancillary data (`SCM_RIGHTS` file
//! descriptors, `SCM_CREDENTIALS`), and the server reads the supervisor's
//! credentials with `SO_PEERCRED`, not the program's.

use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;

use tokio::net::{UnixListener, UnixStream};

/// The longest abstract name (`sun_path` less the leading NUL).
const MAX_NAME: usize = 107;

/// The names to bridge: those `--bridge-abstract` gives (`explicit`, always),
/// and those derived from the environment (`DISPLAY`, the D-Bus bus
/// addresses) that a server in the host's namespace listens on
/// (`listening`), without repeats.
pub fn names(explicit: &[String], env: &[(&str, Option<String>)], listening: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut push = |name: Vec<u8>| {
        if !name.is_empty() && name.len() <= MAX_NAME && !out.contains(&name) {
            out.push(name);
        }
    };
    for name in explicit {
        push(name.strip_prefix('@').unwrap_or(name).as_bytes().to_vec());
    }
    for (key, value) in env {
        let Some(value) = value else { continue };
        let derived = match *key {
            "DISPLAY" => x11_name(value).into_iter().collect(),
            _ => dbus_names(value),
        };
        for name in derived.into_iter().filter(|n| listening.contains(n)) {
            push(name);
        }
    }
    out
}

/// `@/tmp/.X11-unix/X<n>` for a local display (`:N`, `:N.S`, `unix:N`).
pub fn x11_name(display: &str) -> Option<Vec<u8>> {
    let rest = display.strip_prefix("unix").unwrap_or(display).strip_prefix(':')?;
    let number = rest.split('.').next()?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("/tmp/.X11-unix/X{number}").into_bytes())
}

/// The `abstract=` values of a D-Bus address's `unix:` entries (`;`
/// separated, values `%`-escaped).
pub fn dbus_names(address: &str) -> Vec<Vec<u8>> {
    address
        .split(';')
        .filter_map(|entry| entry.strip_prefix("unix:"))
        .flat_map(|params| params.split(','))
        .filter_map(|kv| kv.strip_prefix("abstract="))
        .filter_map(unescape)
        .collect()
}

/// Undoes D-Bus address escaping (`%XX`).
fn unescape(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The abstract names listening in our namespace, from `/proc/net/unix`
/// (the kernel writes them with a leading `@`).
pub fn listening_names() -> Vec<Vec<u8>> {
    std::fs::read("/proc/net/unix").map(|t| parse_proc_net_unix(&t)).unwrap_or_default()
}

/// Listening (flags `00010000`) abstract names of a `/proc/net/unix` table.
fn parse_proc_net_unix(table: &[u8]) -> Vec<Vec<u8>> {
    table
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').filter(|f| !f.is_empty()).collect();
            let (flags, path) = (fields.get(3)?, fields.get(7)?);
            (*flags == b"00010000").then_some(())?;
            path.strip_prefix(b"@").map(<[u8]>::to_vec)
        })
        .collect()
}

/// The `sockaddr_un` of an abstract name, and its length.
pub fn sockaddr(name: &[u8]) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let name = &name[..name.len().min(MAX_NAME)];
    // SAFETY: sockaddr_un fits in sockaddr_storage and has no stricter alignment.
    let un = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
    un.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in un.sun_path[1..].iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    (storage, len as libc::socklen_t)
}

/// Relays each bridge's connections (`bridges`: name and the listener the
/// child made on it in the program's namespace).
pub fn start(runtime: &tokio::runtime::Runtime, bridges: Vec<(Vec<u8>, OwnedFd)>) -> anyhow::Result<()> {
    let _inside = runtime.enter();
    for (name, fd) in bridges {
        let std = std::os::unix::net::UnixListener::from(fd);
        std.set_nonblocking(true)?;
        runtime.spawn(serve(UnixListener::from_std(std)?, name));
    }
    Ok(())
}

async fn serve(listener: UnixListener, name: Vec<u8>) {
    loop {
        match listener.accept().await {
            Ok((inside, _)) => {
                tokio::spawn(relay(inside, name.clone()));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn relay(mut inside: UnixStream, name: Vec<u8>) {
    // A connect to a local listener does not wait for the network; it may
    // wait for room in a full backlog, so off the runtime's threads.
    let outside = tokio::task::spawn_blocking(move || {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name)?;
        let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
        s.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(s)
    })
    .await;
    let Some(mut outside) = outside.ok().and_then(Result::ok).and_then(|s| UnixStream::from_std(s).ok())
    else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_name_the_x11_socket() {
        for (display, want) in [
            (":0", Some("/tmp/.X11-unix/X0")),
            (":12.1", Some("/tmp/.X11-unix/X12")),
            ("unix:3", Some("/tmp/.X11-unix/X3")),
            ("localhost:0", None),
            ("host:10.0", None),
            (":", None),
            (":x", None),
        ] {
            assert_eq!(x11_name(display), want.map(|w| w.as_bytes().to_vec()), "{display}");
        }
    }

    #[test]
    fn dbus_addresses_give_their_abstract_entries_unescaped() {
        assert_eq!(
            dbus_names("unix:path=/run/user/1/bus;unix:abstract=/tmp/dbus-AbC%2c1,guid=42;tcp:host=x,port=1"),
            vec![b"/tmp/dbus-AbC,1".to_vec()]
        );
        assert!(dbus_names("unix:path=/run/user/1/bus").is_empty());
        assert!(dbus_names("unix:abstract=/bad%zz").is_empty());
    }

    #[test]
    fn derived_names_are_bridged_only_where_a_server_listens_explicit_ones_always() {
        let listening = vec![b"/tmp/.X11-unix/X5".to_vec(), b"/tmp/dbus-s".to_vec()];
        let env = [
            ("DISPLAY", Some(":5".to_string())),
            ("DBUS_SESSION_BUS_ADDRESS", Some("unix:abstract=/tmp/dbus-s,guid=1".to_string())),
            ("DBUS_SYSTEM_BUS_ADDRESS", Some("unix:abstract=/tmp/dbus-nobody-listens".to_string())),
        ];
        let got = names(&["@my-name".into(), "/tmp/.X11-unix/X5".into()], &env, &listening);
        let want: Vec<Vec<u8>> =
            [&b"my-name"[..], b"/tmp/.X11-unix/X5", b"/tmp/dbus-s"].iter().map(|n| n.to_vec()).collect();
        assert_eq!(got, want);
        assert!(names(&[], &[("DISPLAY", Some(":6".into()))], &listening).is_empty());
    }

    #[test]
    fn proc_net_unix_lists_listening_abstract_names() {
        let table = b"Num       RefCount Protocol Flags    Type St Inode Path\n\
ffff0001: 00000002 00000000 00010000 0001 01 1001 @/tmp/.X11-unix/X0\n\
ffff0002: 00000002 00000000 00010000 0001 01 1002 /tmp/.X11-unix/X0\n\
ffff0003: 00000003 00000000 00000000 0001 03 1003 @/tmp/dbus-connected\n\
ffff0004: 00000002 00000000 00000000 0002 01 1004\n";
        assert_eq!(parse_proc_net_unix(table), vec![b"/tmp/.X11-unix/X0".to_vec()]);
    }

    #[test]
    fn the_sockaddr_is_family_nul_and_name() {
        let (addr, len) = sockaddr(b"ab");
        assert_eq!(len as usize, 2 + 1 + 2);
        // SAFETY: reads the first len bytes of a live sockaddr_storage.
        let bytes = unsafe {
            std::slice::from_raw_parts((&addr as *const libc::sockaddr_storage).cast::<u8>(), len as usize)
        };
        assert_eq!(&bytes[2..], b"\0ab");
    }
}
