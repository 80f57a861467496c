//! Asking the kernel which BPF programs are attached to a cgroup
//! (`BPF_PROG_QUERY`), without bpftool.

use std::os::fd::AsRawFd;
use std::path::Path;

const BPF_PROG_QUERY: libc::c_long = 16;

/// cgroup attach types (enum bpf_attach_type) of the hooks sockstrace uses.
pub const CGROUP_ATTACH_TYPES: &[(&str, u32)] = &[
    ("egress", 1),
    ("sock_create", 2),
    ("sock_ops", 3),
    ("bind4", 8),
    ("bind6", 9),
    ("connect4", 10),
    ("connect6", 11),
    ("post_bind4", 12),
    ("post_bind6", 13),
    ("sendmsg4", 14),
    ("sendmsg6", 15),
    ("recvmsg4", 19),
    ("recvmsg6", 20),
    ("getpeername4", 29),
    ("setsockopt", 22),
    ("getpeername6", 30),
];

/// How many programs are attached directly to the cgroup directory `dir` for
/// `attach_type` (links included).
pub fn attached_count(dir: &Path, attach_type: u32) -> std::io::Result<u32> {
    let file = std::fs::File::open(dir)?;
    // union bpf_attr, query part: target_fd @0, attach_type @4, query_flags
    // @8, attach_flags @12, prog_ids @16, prog_cnt @24.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(file.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&attach_type.to_ne_bytes());
    // SAFETY: bpf(BPF_PROG_QUERY) reads and writes within `attr`, whose size
    // is passed; prog_ids is NULL, so only the count is written.
    let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u32::from_ne_bytes(attr[24..28].try_into().unwrap()))
}

/// Every sockstrace hook type with a non-zero count on `dir`.
pub fn attached(dir: &Path) -> std::io::Result<Vec<(&'static str, u32)>> {
    let mut found = Vec::new();
    for &(name, ty) in CGROUP_ATTACH_TYPES {
        let n = attached_count(dir, ty)?;
        if n > 0 {
            found.push((name, n));
        }
    }
    Ok(found)
}
