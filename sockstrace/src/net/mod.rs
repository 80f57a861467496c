//! Pure parsing of the kernel's socket ABI structures, as copied out of a tracee.
//!
//! Nothing here touches the kernel: callers hand in bytes they copied once,
//! and every decision is made on those bytes.

pub mod cmsg;
pub mod msghdr;
pub mod sockaddr;
pub mod socket;
pub mod sockopt;
