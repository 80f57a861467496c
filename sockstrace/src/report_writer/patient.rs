//! Writing to a stream the program shares: stdout under `--report -`, stderr for the human
//! lines. `O_NONBLOCK` is a flag of the open file description, which the program shares with
//! us: a program that sets it and fills a pipe whose reader is slow made our writes fail with
//! `EAGAIN`, and its leak's line and event were dropped. [`Patient`] waits until the stream
//! takes more (`poll`), as a blocking write would have.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd};

/// A writer that waits out `EAGAIN` instead of failing.
pub struct Patient<W>(pub W);

impl<W: Write + AsFd> Write for Patient<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(self.0.as_fd())?,
                result => return result,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        loop {
            match self.0.flush() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(self.0.as_fd())?,
                result => return result,
            }
        }
    }
}

/// Waits until `fd` takes more bytes (or has an error or a hang-up to report on the next write).
fn wait_writable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut pollfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid, initialized pollfd that outlives the call.
    if unsafe { libc::poll(&mut pollfd, 1, -1) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn a_full_non_blocking_pipe_is_waited_for() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let fd = writer.as_fd().as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on our own open pipe.
        unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
        let data = vec![b'x'; 1 << 20];
        let expected = data.len();
        let drain = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all.len()
        });
        let mut patient = Patient(writer);
        patient.write_all(&data).expect("written whole");
        drop(patient);
        assert_eq!(drain.join().unwrap(), expected);
    }
}
