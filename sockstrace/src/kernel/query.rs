//! `BPF_PROG_QUERY` on a cgroup: how many programs are attached, per attach type. Lets the
//! tests see that a witness detaches everything, without bpftool.

use std::os::fd::{AsRawFd as _, BorrowedFd};

use anyhow::{Context as _, Result};

/// `enum bpf_attach_type` values (UAPI, stable) of every hook the object attaches.
pub const ATTACH_TYPES: &[(&str, u32)] = &[
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

/// Programs attached to the cgroup `dir` for `attach_type` (not counting inherited ones).
pub fn attached(dir: BorrowedFd<'_>, attach_type: u32) -> Result<u32> {
    let mut attr = QueryAttr {
        target_fd: u32::try_from(dir.as_raw_fd()).context("negative fd")?,
        attach_type,
        ..QueryAttr::default()
    };
    // SAFETY: `attr` is a live, zero-initialised `bpf_attr.query` of the size we pass; with
    // `prog_ids` null and `prog_cnt` 0 the kernel only writes the count into it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut attr,
            std::mem::size_of::<QueryAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_PROG_QUERY");
    }
    Ok(attr.prog_cnt)
}
