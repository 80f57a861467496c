//! `BPF_PROG_QUERY` on a cgroup: which programs are attached, per attach type. Lets a witness
//! check that it detached everything (and the tests see it), without bpftool.

use std::os::fd::{AsRawFd as _, BorrowedFd};

use anyhow::{Context as _, Result};

/// `enum bpf_attach_type` values (UAPI, stable) of every hook the object attaches.
pub const ATTACH_TYPES: &[(&str, u32)] = &[
    ("inet_egress", 1),
    ("inet_sock_create", 2),
    ("sock_ops", 3),
    ("inet4_bind", 8),
    ("inet6_bind", 9),
    ("inet4_connect", 10),
    ("inet6_connect", 11),
    ("inet4_post_bind", 12),
    ("inet6_post_bind", 13),
    ("udp4_sendmsg", 14),
    ("udp6_sendmsg", 15),
    ("udp4_recvmsg", 19),
    ("udp6_recvmsg", 20),
    ("setsockopt", 22),
    ("inet4_getpeername", 29),
    ("inet6_getpeername", 30),
];

const BPF_PROG_QUERY: libc::c_long = 16;

/// The `query` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// How many times the count may change between asking for it and for the ids.
const ID_RETRIES: usize = 4;

/// Programs attached to the cgroup `dir` for `attach_type` (not counting inherited ones).
#[cfg(test)]
pub fn attached(dir: BorrowedFd<'_>, attach_type: u32) -> Result<u32> {
    let mut attr = QueryAttr {
        target_fd: u32::try_from(dir.as_raw_fd()).context("negative fd")?,
        attach_type,
        ..QueryAttr::default()
    };
    query(&mut attr).context("BPF_PROG_QUERY")?;
    Ok(attr.prog_cnt)
}

/// The ids of the programs attached to the cgroup `dir` for `attach_type` (not counting
/// inherited ones), whoever attached them.
pub fn attached_ids(dir: BorrowedFd<'_>, attach_type: u32) -> Result<Vec<u32>> {
    let target_fd = u32::try_from(dir.as_raw_fd()).context("negative fd")?;
    for _ in 0..ID_RETRIES {
        let mut count = QueryAttr { target_fd, attach_type, ..QueryAttr::default() };
        query(&mut count).context("BPF_PROG_QUERY")?;
        if count.prog_cnt == 0 {
            return Ok(Vec::new());
        }
        // Room for a few more, in case programs are attached meanwhile.
        let mut ids = vec![0u32; count.prog_cnt as usize + 8];
        let mut attr = QueryAttr {
            target_fd,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).context("too many programs")?,
            ..QueryAttr::default()
        };
        match query(&mut attr) {
            Ok(()) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // More programs than room: ask again.
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => continue,
            Err(err) => return Err(err).context("BPF_PROG_QUERY"),
        }
    }
    anyhow::bail!("BPF_PROG_QUERY: the cgroup's programs kept changing")
}

/// `BPF_PROG_QUERY` with `attr`. With `prog_ids` set, the kernel writes up to `prog_cnt` ids
/// there (and `ENOSPC` if there are more).
fn query(attr: &mut QueryAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is a live `bpf_attr.query` of the size we pass, zero beyond the fields we
    // set. `prog_ids` is either null (with `prog_cnt` 0: the kernel only writes the count) or
    // points at a live `u32` buffer of `prog_cnt` entries (`attached_ids` keeps it alive across
    // the call): the kernel writes at most that many ids there.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            std::ptr::from_mut(attr),
            std::mem::size_of::<QueryAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
