//! The program's stdout and stderr, relayed: where a stream we write to (stderr, our human lines;
//! stdout under `--report -`) would be shared with the program, the program gets a pipe instead
//! and a thread of ours copies it to the real stream. The program never holds the real open
//! file description, so it cannot shut the socket down, make it non-blocking, truncate or seek
//! it; and its output reaches the stream through the lock our own lines take (see
//! [`super::stream`]), whole lines at a time.
//!
//! A terminal (and any other character device, such as `/dev/null`) stays the program's own:
//! `isatty` must stay true for interactive programs.
//!
//! Line discipline: the program's complete lines pass at once; a partial line is held until its
//! newline, the end of the output, [`IDLE`] after its first byte (so prompts show), or
//! [`MAX_HELD`] bytes.
//!
//! Life cycle: started before the program, [`Relay::finish`]ed when the run ends (every process
//! of the program gone): what the pipe holds then is copied, no more, and the pipe is closed. A
//! process outside the run that holds the pipe (passed to it, or opened through /proc) and
//! writes later gets `EPIPE` (or `SIGPIPE`): its later output is lost, it does not keep
//! sockstrace running.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::stream::{self, RealStream};

/// How long a partial line is held before it is written as it is.
pub const IDLE: Duration = Duration::from_millis(50);
/// The most of a partial line held.
pub const MAX_HELD: usize = 64 * 1024;
/// How much one read takes from the pipe.
const CHUNK: usize = 256 * 1024;
/// The pipe's capacity asked for (the kernel's default limit for unprivileged users).
const PIPE_SIZE: i32 = 1024 * 1024;

/// What an fd of ours is open on, as far as relaying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not open.
    Closed,
    Terminal,
    /// Any other character device (`/dev/null`).
    CharDevice,
    /// A pipe, a socket, a regular file, anything else.
    Shareable,
}

/// Whether the program gets a pipe in place of our stream: we write to it, and it is a file,
/// pipe or socket (whose description the program could shut down, make non-blocking, truncate
/// or seek), not a terminal.
pub fn relays(kind: Kind, written_by_us: bool) -> bool {
    written_by_us && kind == Kind::Shareable
}

/// What our `fd` is open on.
fn kind_of(fd: i32) -> Kind {
    // A closed fd gives EBADF.
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return Kind::Closed;
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Kind::Shareable;
    }
    // SAFETY: isatty on an open fd number.
    if unsafe { libc::isatty(fd) } == 1 {
        Kind::Terminal
    } else {
        Kind::CharDevice
    }
}

/// One relayed stream: the program's end of its pipe until the program has it, and the thread.
struct Relayed {
    /// The program's fds that get the pipe: 1, 2, or both when our stdout and stderr are one
    /// file or socket (`2>&1`: one pipe keeps the order of the program's writes to either).
    targets: &'static [i32],
    program_end: Option<OwnedFd>,
    /// Written at the end: the thread drains what is readable and stops.
    stop: OwnedFd,
    done: mpsc::Receiver<()>,
}

/// The relays of a run (none when every stream is a terminal).
pub struct Relay {
    streams: Vec<Relayed>,
}

impl Relay {
    /// Decides which of stdout and stderr to relay (`report_on_stdout`: `--report -`) and
    /// starts their threads. A relay that cannot be set up leaves that stream shared, as
    /// before, and says so.
    pub fn start(report_on_stdout: bool) -> Relay {
        let mut streams = Vec::new();
        let one_stream = stream::same_object(1, 2);
        let plan: &[(&'static [i32], bool)] =
            if one_stream { &[(&[1, 2], true)] } else { &[(&[1], report_on_stdout), (&[2], true)] };
        for &(targets, ours) in plan {
            let fd = targets.last().copied().unwrap_or(2);
            if !relays(kind_of(fd), ours) {
                continue;
            }
            let real = if fd == 1 { stream::stdout() } else { stream::stderr() };
            match start_one(targets, real) {
                Ok(relayed) => streams.push(relayed),
                Err(e) => super::human::write_line(&format!(
                    "sockstrace: warning: the program shares fd {targets:?} with sockstrace (no relay: {e})"
                )),
            }
        }
        Relay { streams }
    }

    /// The pipe ends the program gets as its fds 1 and 2 (`None`: its own, ours as they are).
    pub fn program_fds(&self) -> [Option<BorrowedFd<'_>>; 2] {
        let mut fds = [None, None];
        for s in &self.streams {
            for &target in s.targets {
                if let (Some(end), Some(slot)) = (&s.program_end, fds.get_mut((target - 1) as usize)) {
                    *slot = Some(end.as_fd());
                }
            }
        }
        fds
    }

    /// Closes our copies of the program's ends (once it has them): the relay then sees the end
    /// of the output when every process of the program has closed them.
    pub fn program_started(&mut self) {
        for s in &mut self.streams {
            s.program_end = None;
        }
    }

    /// Copies what the pipes hold now (what the program wrote before the run ended), then
    /// closes them. Writes made later, by a process outside the run that holds a pipe, are
    /// not copied: they get `EPIPE`.
    pub fn finish(mut self) {
        self.program_started();
        for s in &self.streams {
            let _ = nix::unistd::write(&s.stop, &1u64.to_ne_bytes());
        }
        for s in &self.streams {
            // As long as the real stream takes the bytes, as our own lines wait for it.
            let _ = s.done.recv();
        }
    }
}

fn start_one(targets: &'static [i32], real: &'static RealStream) -> std::io::Result<Relayed> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // Bigger than the default 64 KiB, for bulk output; refused is fine.
    // SAFETY: F_SETPIPE_SZ on a pipe of ours.
    unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    // SAFETY: eventfd with flags only; the result is checked and owned below.
    let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if stop < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd of ours, owned from here on.
    let stop = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(stop) };
    let stop_theirs = stop.try_clone()?;
    let (done_tx, done) = mpsc::channel();
    std::thread::Builder::new().name("sockstrace-relay".into()).spawn(move || {
        crate::supervisor::block_signals_in_this_thread();
        pump(&read, &stop_theirs, real);
        drop(read);
        let _ = done_tx.send(());
    })?;
    Ok(Relayed { targets, program_end: Some(write), stop, done })
}

/// A partial line held back, and since when.
#[derive(Default)]
pub struct Held {
    bytes: Vec<u8>,
    since: Option<Instant>,
}

impl Held {
    /// Takes `chunk` in: returns the prefix of (held + chunk) to write now, as (held part,
    /// chunk part), keeping the rest. Whole lines go at once; a partial one once it reaches
    /// [`MAX_HELD`].
    pub fn feed<'c>(&mut self, chunk: &'c [u8], now: Instant) -> (Vec<u8>, &'c [u8]) {
        match memchr::memrchr(b'\n', chunk) {
            Some(i) => {
                let (now_part, rest) = chunk.split_at(i + 1);
                let held = std::mem::take(&mut self.bytes);
                self.bytes.extend_from_slice(rest);
                self.since = (!self.bytes.is_empty()).then_some(now);
                (held, now_part)
            }
            None if self.bytes.len() + chunk.len() >= MAX_HELD => {
                self.since = None;
                (std::mem::take(&mut self.bytes), chunk)
            }
            None => {
                if self.bytes.is_empty() && !chunk.is_empty() {
                    self.since = Some(now);
                }
                self.bytes.extend_from_slice(chunk);
                (Vec::new(), &[])
            }
        }
    }

    /// How long until the held bytes are due (`None`: nothing held).
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        self.since.map(|since| (since + IDLE).saturating_duration_since(now))
    }

    /// Everything held, now.
    pub fn take(&mut self) -> Vec<u8> {
        self.since = None;
        std::mem::take(&mut self.bytes)
    }
}

/// Copies `pipe` to `real` until the end of the output, or until `stop`: then what the pipe
/// holds at that moment, and no more. Never panics; a failed write to the real stream closes
/// the pipe (the program then gets `EPIPE`, as it would have writing to the broken stream).
fn pump(pipe: &OwnedFd, stop: &OwnedFd, real: &RealStream) {
    let mut buf = vec![0u8; CHUNK];
    let mut held = Held::default();
    // After `stop`: the bytes still to copy.
    let mut left: Option<usize> = None;
    loop {
        if left == Some(0) {
            break;
        }
        let timeout = match (left, held.due_in(Instant::now())) {
            (Some(_), _) => 0,
            (None, Some(due)) => i32::try_from(due.as_millis()).unwrap_or(i32::MAX),
            (None, None) => -1,
        };
        let mut fds = [
            libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid, initialized pollfds that outlive the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if fds[1].revents != 0 && left.is_none() {
            left = Some(readable(pipe));
            continue;
        }
        if fds[0].revents != 0 {
            let want = left.map_or(CHUNK, |left| left.min(CHUNK));
            let n = match nix::unistd::read(pipe.as_raw_fd(), buf.get_mut(..want).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(_) => break,
            };
            left = left.map(|left| left.saturating_sub(n));
            let (old, new) = held.feed(buf.get(..n).unwrap_or_default(), Instant::now());
            if real.write_program(&[&old, new]).is_err() {
                return;
            }
        } else if left.is_some() {
            break;
        } else if held.due_in(Instant::now()).is_some_and(|d| d.is_zero())
            && real.write_program(&[&held.take()]).is_err()
        {
            return;
        }
    }
    let _ = real.write_program(&[&held.take()]);
}

/// How many bytes `pipe` holds now (`FIONREAD`; 0 when it cannot tell).
fn readable(pipe: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to a live local.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streams_we_write_that_are_not_devices_are_relayed() {
        for kind in [Kind::Closed, Kind::Terminal, Kind::CharDevice, Kind::Shareable] {
            assert!(!relays(kind, false), "{kind:?}");
        }
        assert!(relays(Kind::Shareable, true));
        assert!(!relays(Kind::Terminal, true));
        assert!(!relays(Kind::CharDevice, true));
        assert!(!relays(Kind::Closed, true));
    }

    #[test]
    fn whole_lines_pass_and_a_partial_one_is_held() {
        let t = Instant::now();
        let mut held = Held::default();
        let (old, new) = held.feed(b"one\ntwo\nthr", t);
        assert_eq!((old.as_slice(), new), (&b""[..], &b"one\ntwo\n"[..]));
        assert_eq!(held.due_in(t), Some(IDLE));
        let (old, new) = held.feed(b"ee", t + Duration::from_millis(10));
        assert_eq!((old.as_slice(), new), (&b""[..], &b""[..]));
        assert_eq!(held.due_in(t + Duration::from_millis(10)), Some(IDLE - Duration::from_millis(10)));
        let (old, new) = held.feed(b"!\nfour", t);
        assert_eq!((old.as_slice(), new), (&b"three"[..], &b"!\n"[..]));
        assert_eq!(held.take(), b"four");
        assert_eq!(held.due_in(t), None);
    }

    #[test]
    fn the_end_copies_what_the_pipe_holds_then_even_with_a_writer_left() {
        use std::io::{Read as _, Write as _};
        let (from, mut writer) = std::io::pipe().unwrap();
        let (mut to_read, to) = std::io::pipe().unwrap();
        let real: &'static RealStream = Box::leak(Box::new(RealStream::on(to.as_raw_fd())));
        // SAFETY: eventfd with flags only.
        let raw = unsafe { libc::eventfd(0, 0) };
        assert!(raw >= 0, "eventfd");
        // SAFETY: a fresh fd of ours, owned from here on.
        let stop = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let stop_theirs = stop.try_clone().unwrap();
        writer.write_all(b"one\ntw").unwrap();
        let from = OwnedFd::from(from);
        let pump = std::thread::spawn(move || pump(&from, &stop_theirs, real));
        nix::unistd::write(&stop, &1u64.to_ne_bytes()).unwrap();
        pump.join().unwrap();
        // The writer is still open: the pump ended on the stop, with the partial line written.
        drop(to);
        let mut got = Vec::new();
        to_read.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"one\ntw");
        assert!(writer.write_all(b"later").is_err(), "the pipe is closed");
    }

    #[test]
    fn a_long_partial_line_is_not_held_for_ever() {
        let t = Instant::now();
        let mut held = Held::default();
        let big = vec![b'x'; MAX_HELD - 1];
        assert_eq!(held.feed(&big, t).1.len(), 0);
        let (old, new) = held.feed(b"yz", t);
        assert_eq!((old.len(), new), (MAX_HELD - 1, &b"yz"[..]));
        assert_eq!(held.due_in(t), None);
    }
}
