//! sockstrace's real stdout and stderr, each behind one lock that its two writers share: our own
//! lines (events under `--report -`, the human lines) and the program's output copied by the
//! relay (see [`super::relay`]).
//!
//! Line discipline: the relay tells the stream whether the program's last byte on it ended a
//! line; a line of ours written while the program is mid-line gets a newline first. Every line
//! of ours then starts at a line start, whatever the program wrote before it.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::kept::Kept;
use super::patient::Patient;

/// One of our two real output streams.
pub struct RealStream {
    fd: i32,
    /// Whether the last byte written (by the program, through the relay) did not end a line.
    mid_line: Mutex<bool>,
    /// The report's private copy, when the report goes here and this is a regular file
    /// (`Kept::adopt`): every byte written here is recorded in it.
    kept: OnceLock<Arc<Mutex<Kept>>>,
    /// On a terminal, our lines go through a thread of their own (`queue`): the program shares
    /// the terminal and can switch its output off (`tcflow(TCOOFF)`), which would block a
    /// writer, and with it the call it is judging, for as long as it likes.
    queue: OnceLock<Option<Queue>>,
}

/// Lines waiting for a terminal's writer thread.
struct Queue {
    tx: SyncSender<Vec<u8>>,
    sent: AtomicU64,
    written: Arc<AtomicU64>,
    dropped: AtomicU64,
}

/// At most this many writes wait for a terminal; past them, lines are dropped, counted and said
/// at the end, which then fails (`drain`).
const QUEUE_LEN: usize = 16 * 1024;

static STDOUT: RealStream =
    RealStream { fd: 1, mid_line: Mutex::new(false), kept: OnceLock::new(), queue: OnceLock::new() };
static STDERR: RealStream =
    RealStream { fd: 2, mid_line: Mutex::new(false), kept: OnceLock::new(), queue: OnceLock::new() };

/// What became of the lines queued for terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// All queued lines were written within the limit.
    pub written: bool,
    /// Lines dropped for a full queue.
    pub dropped: u64,
}

/// Waits until the lines queued for terminals are written, at most `limit`. A terminal whose
/// output the program switched off never takes them.
pub fn drain(limit: Duration) -> Drained {
    let end = Instant::now() + limit;
    let mut drained = Drained { written: true, dropped: 0 };
    for stream in [&STDOUT, &STDERR] {
        let Some(Some(queue)) = stream.queue.get() else { continue };
        drained.dropped += queue.dropped.swap(0, Ordering::AcqRel);
        while queue.written.load(Ordering::Acquire) < queue.sent.load(Ordering::Acquire) {
            if Instant::now() >= end {
                drained.written = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    drained
}

/// Our stdout; the stderr stream when both are one file or socket (`2>&1`), so that one lock
/// orders everything written to it.
pub fn stdout() -> &'static RealStream {
    static SAME: OnceLock<bool> = OnceLock::new();
    if *SAME.get_or_init(|| same_object(1, 2)) {
        &STDERR
    } else {
        &STDOUT
    }
}

/// Our stderr.
pub fn stderr() -> &'static RealStream {
    &STDERR
}

/// Whether fds `a` and `b` are open on one object (file, pipe, socket, terminal): device and
/// inode are equal.
pub fn same_object(a: i32, b: i32) -> bool {
    // A closed fd gives EBADF.
    let id = |fd: i32| nix::sys::stat::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino));
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}

impl RealStream {
    /// A stream on any fd (the relay's tests).
    #[cfg(test)]
    pub fn on(fd: i32) -> RealStream {
        RealStream { fd, mid_line: Mutex::new(false), kept: OnceLock::new(), queue: OnceLock::new() }
    }

    /// Writes whole lines of ours: at once, or on a terminal through its writer thread (see
    /// `queue`), so that the caller never waits for the terminal.
    pub fn write_lines(&'static self, lines: &[u8]) -> io::Result<()> {
        let Some(queue) = self.queue.get_or_init(|| self.start_queue()) else {
            return self.write_ours(lines);
        };
        match queue.tx.try_send(lines.to_vec()) {
            Ok(()) => {
                queue.sent.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                queue.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => self.write_ours(lines),
        }
    }

    /// The writer thread of a terminal; `None` for anything else (or no thread).
    fn start_queue(&'static self) -> Option<Queue> {
        // SAFETY: isatty on an fd number.
        if unsafe { libc::isatty(self.fd) } != 1 {
            return None;
        }
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE_LEN);
        let written = Arc::new(AtomicU64::new(0));
        let done = written.clone();
        let writer = move || {
            for lines in rx {
                let _ = self.write_ours(&lines);
                done.fetch_add(1, Ordering::AcqRel);
            }
        };
        std::thread::Builder::new().name("sockstrace-tty".into()).spawn(writer).ok()?;
        Some(Queue { tx, sent: AtomicU64::new(0), written, dropped: AtomicU64::new(0) })
    }

    /// Keeps this stream as the report file (`Kept::adopt`) when it is a regular file with a
    /// name; the keeper, for the end-of-run check.
    pub fn keep(&self) -> Option<Arc<Mutex<Kept>>> {
        let kept = Arc::new(Mutex::new(Kept::adopt(self.fd)?));
        self.kept.set(kept.clone()).ok()?;
        Some(kept)
    }

    /// Writes `bytes` to the fd, recording them in the report's copy when it is kept.
    fn put(&self, out: &mut Patient<FdWriter>, bytes: &[u8]) -> io::Result<()> {
        let written = out.write_all(bytes);
        if let Some(kept) = self.kept.get() {
            kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(bytes, &written);
        }
        written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.mid_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes whole lines of ours (`lines` ends with a newline), after a newline when the
    /// program's output stopped mid-line. Waits while the stream is full.
    pub fn write_ours(&self, lines: &[u8]) -> io::Result<()> {
        let mut mid_line = self.lock();
        let mut out = Patient(FdWriter(self.fd));
        if *mid_line {
            let mut joined = Vec::with_capacity(lines.len() + 1);
            joined.push(b'\n');
            joined.extend_from_slice(lines);
            self.put(&mut out, &joined)?;
        } else {
            self.put(&mut out, lines)?;
        }
        *mid_line = lines.last().is_some_and(|&b| b != b'\n');
        Ok(())
    }

    /// Writes the program's bytes (`parts` in order), noting whether they end a line.
    pub fn write_program(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut mid_line = self.lock();
        let mut out = Patient(FdWriter(self.fd));
        for part in parts.iter().filter(|p| !p.is_empty()) {
            self.put(&mut out, part)?;
            *mid_line = part.last().is_some_and(|&b| b != b'\n');
        }
        Ok(())
    }
}

/// Unbuffered writes to an fd number we keep open for the whole process (1 or 2).
struct FdWriter(i32);

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: writes from a live slice of `buf.len()` bytes to an fd number.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for FdWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: fds 1 and 2 stay open as long as the process (nothing of ours closes them).
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

/// The sink of a report on our stdout (`--report -`) or stderr: whole lines, through the
/// stream's lock.
pub struct LineSink {
    buf: Vec<u8>,
    stream: &'static RealStream,
}

impl LineSink {
    pub fn new(stream: &'static RealStream) -> Self {
        LineSink { buf: Vec::with_capacity(4096), stream }
    }

    /// Writes out every complete line buffered (all of it when `all`).
    fn write_out(&mut self, all: bool) -> io::Result<()> {
        let end = if all {
            self.buf.len()
        } else {
            self.buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        if end == 0 {
            return Ok(());
        }
        let result = self.stream.write_lines(&self.buf[..end]);
        self.buf.drain(..end);
        result
    }
}

impl Write for LineSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if data.contains(&b'\n') {
            self.write_out(false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_fd_is_the_same_object() {
        use std::os::fd::AsRawFd as _;
        let (one, _w1) = std::io::pipe().unwrap();
        let (two, _w2) = std::io::pipe().unwrap();
        let again = one.try_clone().unwrap();
        assert!(same_object(one.as_raw_fd(), again.as_raw_fd()));
        assert!(!same_object(one.as_raw_fd(), two.as_raw_fd()));
        assert!(!same_object(one.as_raw_fd(), -1));
    }
}
