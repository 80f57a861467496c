//! Who a calling thread is (`pid`, `comm`, `exe`, `argv` of its events), kept
//! between its calls.
//!
//! Reading it from /proc costs some twenty system calls (`status` alone is
//! rendered in full for two of its fields), more than the rest of a trapped
//! call's work: with `--report`, every allowed datagram makes an event. So it is
//! read once per thread and process image, and checked on later calls with two
//! small reads:
//! - the thread is the same: the entry is tied to the pidfd it was read under,
//!   and a pidfd of an exited thread says so (`ESRCH`), even when a new thread
//!   has its tid now;
//! - the image is the same: at `execve` the kernel puts 16 random bytes on the
//!   new stack and names their address in the auxiliary vector (`AT_RANDOM`).
//!   An entry keeps that address and the bytes; after another `execve` the
//!   address holds other bytes, or nothing;
//! - the file is the same: those bytes are the program's to write, and a new
//!   image can map the old image's address and write the old bytes there
//!   before its first call. So the executable's path (`/proc/TID/exe`, one
//!   `readlink`: the kernel's record, the one a fresh read would give) is
//!   read on every call and compared.
//!
//! What changes without an `execve` is seen as it was first read: a thread's
//! name set later (`PR_SET_NAME`), an `argv` rewritten in place
//! (setproctitle), and so is what an `execve` of the same file changes when
//! the new image writes the old mark back (`comm` and `argv`; `pid`, `tid`
//! and `exe` are right). A process that overwrites its own `AT_RANDOM` bytes
//! only makes every call read /proc again.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::sys;
use crate::report_writer::ProcessInfo;

/// The `execve` a process image came from: where its `AT_RANDOM` bytes are, and what they were.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExecMark {
    pub addr: u64,
    pub bytes: [u8; 16],
}

/// What this notification already proved about a thread's kept identity.
#[derive(Clone, Copy, Default, Debug)]
pub struct Proofs {
    /// A call on the thread's pidfd succeeded (so it is the caller's).
    pub pidfd_checked: bool,
    /// The exec mark was read with the call's arguments (`Some(held)`).
    pub mark_held: Option<bool>,
}

struct Known {
    /// The pidfd of the thread the entry was read for.
    pidfd: Arc<OwnedFd>,
    mark: ExecMark,
    info: ProcessInfo,
}

/// Process identities by tid.
#[derive(Default)]
pub struct Identities {
    known: Mutex<HashMap<u32, Known>>,
}

impl Identities {
    /// The exec mark of thread `tid`'s kept identity (read under `pidfd`), to be
    /// read along with the call's arguments.
    pub fn mark(&self, tid: u32, pidfd: &Arc<OwnedFd>) -> Option<ExecMark> {
        let known = self.known.lock().ok()?;
        known.get(&tid).filter(|k| Arc::ptr_eq(&k.pidfd, pidfd)).map(|k| k.mark)
    }

    /// Who thread `tid` (whose pidfd is `pidfd`) is, and whether /proc was read
    /// for it now (not a kept identity). Best effort: missing pieces stay `None`.
    pub fn read(&self, tid: u32, pidfd: &Arc<OwnedFd>, proofs: Proofs) -> (ProcessInfo, bool) {
        if let Some(info) = self.still_known(tid, pidfd, proofs) {
            return (info, false);
        }
        // The mark is read before and after the rest: an `execve` between them
        // leaves nothing kept.
        let before = exec_mark(tid);
        let info = crate::procfs::process_info(tid);
        if let Some(mark) = before.filter(|&mark| mark_holds(tid, mark)) {
            let known = Known { pidfd: pidfd.clone(), mark, info: info.clone() };
            super::tracee::insert_bounded(&self.known, tid, known);
        }
        (info, true)
    }

    fn still_known(&self, tid: u32, pidfd: &Arc<OwnedFd>, proofs: Proofs) -> Option<ProcessInfo> {
        let (mark, info) = {
            let known = self.known.lock().ok()?;
            let entry = known.get(&tid).filter(|k| Arc::ptr_eq(&k.pidfd, pidfd))?;
            (entry.mark, entry.info.clone())
        };
        // Signal 0 only asks whether the pidfd's thread is still there.
        let same_thread = proofs.pidfd_checked || sys::pidfd_send_signal(pidfd.as_fd(), 0).is_ok();
        let same_image = proofs.mark_held.unwrap_or_else(|| mark_holds(tid, mark));
        (same_thread && same_image && info.exe.is_some() && exe_of(tid) == info.exe).then_some(info)
    }
}

/// The path of thread `tid`'s executable, as `procfs::process_info` reads it.
fn exe_of(tid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{tid}/exe")).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Whether the bytes at `mark.addr` in thread `tid`'s memory are still `mark.bytes`.
fn mark_holds(tid: u32, mark: ExecMark) -> bool {
    sys::read_process_memory(tid, mark.addr, mark.bytes.len()).is_ok_and(|now| now == mark.bytes)
}

/// The `AT_RANDOM` bytes of thread `tid`'s current image, when readable.
fn exec_mark(tid: u32) -> Option<ExecMark> {
    let auxv = std::fs::read(format!("/proc/{tid}/auxv")).ok()?;
    let addr = at_random(&auxv)?;
    let bytes = sys::read_process_memory(tid, addr, 16).ok()?.try_into().ok()?;
    Some(ExecMark { addr, bytes })
}

/// `AT_RANDOM` in an auxiliary vector as /proc shows it: pairs of native
/// words, or of 32-bit words for an i386 process (tried when no native pair
/// names it).
fn at_random(auxv: &[u8]) -> Option<u64> {
    const AT_NULL: u64 = 0;
    const AT_RANDOM: u64 = 25;
    fn find(auxv: &[u8], word: usize) -> Option<u64> {
        let read = |b: &[u8]| -> u64 {
            let mut buf = [0u8; 8];
            buf[..word].copy_from_slice(b);
            u64::from_ne_bytes(buf)
        };
        for pair in auxv.chunks_exact(2 * word) {
            let (key, value) = (read(&pair[..word]), read(&pair[word..]));
            match key {
                AT_NULL => return None,
                AT_RANDOM if value != 0 => return Some(value),
                _ => {}
            }
        }
        None
    }
    find(auxv, 8).or_else(|| find(auxv, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auxv(word: usize, pairs: &[(u64, u64)]) -> Vec<u8> {
        pairs.iter().flat_map(|&(k, v)| [k, v]).flat_map(|w| w.to_ne_bytes()[..word].to_vec()).collect()
    }

    #[test]
    fn finds_at_random_in_native_and_i386_vectors() {
        let pairs = [(6, 4096), (11, 25), (25, 0xffff_1234), (0, 0)];
        assert_eq!(at_random(&auxv(8, &pairs)), Some(0xffff_1234));
        assert_eq!(at_random(&auxv(4, &pairs)), Some(0xffff_1234));
        assert_eq!(at_random(&auxv(8, &[(6, 4096), (0, 0), (25, 7)])), None, "past AT_NULL");
        assert_eq!(at_random(&[]), None);
    }

    #[test]
    fn this_process_is_read_once_and_then_known() {
        let me = std::process::id();
        let pidfd = Arc::new(sys::pidfd_open_thread(me).expect("pidfd"));
        let ids = Identities::default();
        let (first, read_now) = ids.read(me, &pidfd, Proofs::default());
        assert!(read_now);
        assert_eq!(first.pid, Some(me));
        assert!(ids.known.lock().unwrap().contains_key(&me), "an identity with an AT_RANDOM mark is kept");
        let again = ids.still_known(me, &pidfd, Proofs::default()).expect("known on the next call");
        assert!(!ids.read(me, &pidfd, Proofs::default()).1, "kept, not read again");
        let mark = ids.mark(me, &pidfd).expect("a mark");
        assert!(mark_holds(me, mark));
        let proofs = Proofs { pidfd_checked: true, mark_held: Some(false) };
        assert!(ids.still_known(me, &pidfd, proofs).is_none(), "a mark seen changed with the arguments");
        assert_eq!(again.exe, first.exe);
        // Another pidfd for the tid (the first one's thread exited): read again.
        let other = Arc::new(sys::pidfd_open_thread(me).expect("pidfd"));
        assert!(ids.still_known(me, &other, Proofs::default()).is_none());
    }

    #[test]
    fn a_changed_mark_means_another_image() {
        let me = std::process::id();
        let pidfd = Arc::new(sys::pidfd_open_thread(me).expect("pidfd"));
        let ids = Identities::default();
        let checked = Proofs { pidfd_checked: true, mark_held: None };
        ids.read(me, &pidfd, checked);
        // As after an execve: other bytes at the mark's address.
        ids.known.lock().unwrap().get_mut(&me).unwrap().mark.bytes[0] ^= 0xff;
        assert!(ids.still_known(me, &pidfd, checked).is_none());
    }

    #[test]
    fn another_executable_under_a_mark_that_holds_is_another_image() {
        let me = std::process::id();
        let pidfd = Arc::new(sys::pidfd_open_thread(me).expect("pidfd"));
        let ids = Identities::default();
        let held = Proofs { pidfd_checked: true, mark_held: Some(true) };
        ids.read(me, &pidfd, held);
        assert!(ids.still_known(me, &pidfd, held).is_some());
        // As after an execve of another file whose image wrote the old mark back.
        ids.known.lock().unwrap().get_mut(&me).unwrap().info.exe = Some("/usr/bin/innocent".into());
        assert!(ids.still_known(me, &pidfd, held).is_none());
        // An executable that could not be read is never taken as the same.
        ids.known.lock().unwrap().get_mut(&me).unwrap().info.exe = None;
        assert!(ids.still_known(me, &pidfd, held).is_none());
    }
}
