//! What a handler takes from the caller: copies of its memory (addresses,
//! payloads, option values) and our duplicate of the socket its fd number
//! names. Each comes [`Unconfirmed`]: until `SECCOMP_IOCTL_NOTIF_ID_VALID`
//! says the caller still waits in this call, the pid may have been recycled
//! and the bytes or the socket another process's. Only
//! [`Unconfirmed::confirm`] hands the values out, so no handler decides on
//! what it has not confirmed.
//!
//! A handler chooses where it confirms (before a call it performs, before a
//! reply that installs an fd, after its last read): whatever it read before a
//! confirm is covered by it, so reads joined with [`Unconfirmed::and`] take
//! one confirm.

use super::Call;
use crate::net::sockaddr;
use crate::supervisor::tracee::{Failure, Socket};

/// Values copied from the caller, not yet known to be its own.
#[must_use = "what was read from the caller is usable only once confirmed"]
pub struct Unconfirmed<T>(T);

impl<T> Unconfirmed<T> {
    /// The values, once the caller is known to be the thread that still
    /// waits in this call ([`confirm`]); `Failure::Gone` otherwise.
    pub fn confirm(self, call: &Call<'_>) -> Result<T, Failure> {
        confirm(call)?;
        Ok(self.0)
    }

    /// Joins another read, to be confirmed with this one.
    pub fn and<U>(self, other: Unconfirmed<U>) -> Unconfirmed<(T, U)> {
        Unconfirmed((self.0, other.0))
    }

    /// Reshapes the values (splitting one copy into its parts), still unconfirmed.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Unconfirmed<U> {
        Unconfirmed(f(self.0))
    }

    /// Joins the reads of a list (one per message), to be confirmed at once.
    pub fn all(reads: Vec<Unconfirmed<T>>) -> Unconfirmed<Vec<T>> {
        Unconfirmed(reads.into_iter().map(|read| read.0).collect())
    }

    /// The values, unconfirmed, for a decision whose only outcome on their say-so is CONTINUE
    /// on the fast path (`send::sent_by_kernel_unseen`): the kernel then judges what it runs
    /// itself, and a CONTINUE for a caller that is gone (the bytes another process's) is
    /// refused by the kernel, the notification's id no longer valid.
    pub fn for_continue(self) -> T {
        self.0
    }

    /// The values, for what no decision rests on: planning what else to copy
    /// and from where (the pointers in a msghdr, a `socketcall`'s words, how
    /// much of a send to copy, which path a socket's sends take, each of
    /// which confirms before it decides), or how much to write back.
    pub fn plan(&self) -> &T {
        &self.0
    }
}

/// Our duplicate of the caller's fd `raw` (an argument) with its family, type
/// and protocol.
pub fn socket(call: &mut Call<'_>, raw: u64) -> Result<Unconfirmed<Socket>, Failure> {
    call.tracee.socket(raw).map(Unconfirmed)
}

/// As [`socket`], the facts from the cache for a socket seen before (see
/// `Tracee::socket_seen_before`).
pub fn socket_seen_before(call: &mut Call<'_>, raw: u64) -> Result<Unconfirmed<Socket>, Failure> {
    call.tracee.socket_seen_before(raw).map(Unconfirmed)
}

/// `len` bytes of the caller's memory at `ptr`.
pub fn read(call: &Call<'_>, ptr: u64, len: usize) -> Result<Unconfirmed<Vec<u8>>, Failure> {
    call.tracee.read(ptr, len).map(Unconfirmed)
}

/// Several regions of the caller's memory, in one copy, end to end.
pub fn read_regions(call: &Call<'_>, regions: &[(u64, usize)]) -> Result<Unconfirmed<Vec<u8>>, Failure> {
    call.tracee.read_regions(regions).map(Unconfirmed)
}

/// A `(pointer, socklen_t)` address argument pair, with the kernel's length
/// rules (negative or over 128 is `EINVAL`).
pub fn addr(call: &Call<'_>, ptr: u64, len: u64) -> Result<Unconfirmed<Vec<u8>>, Failure> {
    read(call, ptr, addr_len(len)?)
}

/// A `socklen_t` address length argument, checked as the kernel does.
pub fn addr_len(len: u64) -> Result<usize, Failure> {
    let len = len as u32 as i32;
    if len < 0 || len as usize > sockaddr::SOCKADDR_MAX {
        return Err(Failure::Caller(libc::EINVAL));
    }
    Ok(len as usize)
}

/// Confirms the caller is still the same waiting thread: what was read of
/// it, and what /proc said of it, was its own. For a confirm with nothing
/// read since the last one (a blocking accept's next wait), or of what a
/// handler read other than through this module (/proc).
pub fn confirm(call: &Call<'_>) -> Result<(), Failure> {
    if call.ctx.notifier.id_valid(call.n.id) {
        Ok(())
    } else {
        Err(Failure::Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lengths_follow_the_kernel() {
        assert_eq!(addr_len(16).ok(), Some(16));
        assert_eq!(addr_len(0).ok(), Some(0));
        assert_eq!(addr_len(sockaddr::SOCKADDR_MAX as u64).ok(), Some(sockaddr::SOCKADDR_MAX));
        assert!(matches!(addr_len(sockaddr::SOCKADDR_MAX as u64 + 1), Err(Failure::Caller(libc::EINVAL))));
        // socklen_t is read as an int: negative is EINVAL, the upper half of the register ignored.
        assert!(matches!(addr_len(u32::MAX as u64), Err(Failure::Caller(libc::EINVAL))));
        assert_eq!(addr_len((1u64 << 32) | 16).ok(), Some(16));
    }

    #[test]
    fn joined_reads_keep_their_parts() {
        let joined = Unconfirmed(vec![1u8, 2, 3, 4]).map(|mut data| {
            let name = data.split_off(2);
            (data, name)
        });
        assert_eq!(joined.plan(), &(vec![1, 2], vec![3, 4]));
        let all = Unconfirmed::all(vec![Unconfirmed(1), Unconfirmed(2)]).and(Unconfirmed("x"));
        assert_eq!(all.plan(), &(vec![1, 2], "x"));
    }
}
