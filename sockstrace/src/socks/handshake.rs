//! Driving the SOCKS5 exchange over a socket that may be non-blocking (it is
//! the traced program's own), with one deadline for the whole exchange.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::codec::{self, Credentials, SocksError, Target};

/// Why a handshake failed, as the errno the program's connect returns.
pub type Errno = i32;

/// Whether an exchange is to end early: asked when a wait is interrupted (`EINTR`), which
/// otherwise just waits again. The exchange then fails with `EINTR`.
pub type Stop<'a> = &'a dyn Fn() -> bool;

/// Never ends an exchange early.
pub fn never() -> bool {
    false
}

/// Runs greeting, optional authentication and CONNECT on a socket already
/// connected to the proxy. Each message is written in one piece (some
/// proxies misread split messages).
pub fn handshake(
    fd: BorrowedFd<'_>,
    target: &Target,
    creds: Option<&Credentials>,
    timeout: Duration,
    stop: Stop<'_>,
) -> Result<(), Errno> {
    let deadline = Instant::now() + timeout;
    let io = Io::new(fd, deadline, stop);
    let socks = |e: SocksError| e.errno();
    io.write_all(&codec::greeting(creds))?;
    let needs_auth = codec::parse_method(io.read_array()?, creds.is_some()).map_err(socks)?;
    if needs_auth {
        let creds = creds.ok_or(libc::ECONNREFUSED)?;
        io.write_all(&codec::auth_request(creds).map_err(socks)?)?;
        codec::parse_auth_reply(io.read_array()?).map_err(socks)?;
    }
    io.write_all(&codec::connect_request(target).map_err(socks)?)?;
    let rest = codec::parse_reply_head(io.read_array()?).map_err(socks)?;
    io.read_exact(&mut vec![0u8; rest])
}

/// Blocking-style I/O with one deadline on a socket that may be non-blocking.
pub(super) struct Io<'a> {
    fd: BorrowedFd<'a>,
    deadline: Instant,
    stop: Stop<'a>,
}

impl<'a> Io<'a> {
    pub(super) fn new(fd: BorrowedFd<'a>, deadline: Instant, stop: Stop<'a>) -> Self {
        Io { fd, deadline, stop }
    }

    /// Waits until the socket is ready for `events`, or the deadline.
    fn wait(&self, events: libc::c_short) -> Result<(), Errno> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(libc::ETIMEDOUT);
        }
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events, revents: 0 };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one live pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => Err(libc::ETIMEDOUT),
            n if n < 0 && last_errno() == libc::EINTR && (self.stop)() => Err(libc::EINTR),
            n if n < 0 && last_errno() == libc::EINTR => Ok(()),
            n if n < 0 => Err(last_errno()),
            _ => Ok(()),
        }
    }

    pub(super) fn write_all(&self, mut buf: &[u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            // SAFETY: buf is live for buf.len() bytes; MSG_NOSIGNAL keeps SIGPIPE away from us.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            match n {
                n if n >= 0 => buf = &buf[n as usize..],
                _ if matches!(last_errno(), libc::EAGAIN | libc::EINTR) => self.wait(libc::POLLOUT)?,
                _ => return Err(last_errno()),
            }
        }
        Ok(())
    }

    pub(super) fn read_exact(&self, mut buf: &mut [u8]) -> Result<(), Errno> {
        while !buf.is_empty() {
            // SAFETY: buf is live and writable for buf.len() bytes.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
            };
            match n {
                0 => return Err(libc::ECONNRESET),
                n if n > 0 => buf = &mut buf[n as usize..],
                _ if matches!(last_errno(), libc::EAGAIN | libc::EINTR) => self.wait(libc::POLLIN)?,
                _ => return Err(last_errno()),
            }
        }
        Ok(())
    }

    pub(super) fn read_array<const N: usize>(&self) -> Result<[u8; N], Errno> {
        let mut out = [0u8; N];
        self.read_exact(&mut out)?;
        Ok(out)
    }
}

fn last_errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    use super::*;

    /// A scripted proxy: checks what it receives and answers as told.
    fn proxy(
        script: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            for (expect, answer) in script {
                let mut got = vec![0u8; expect.len()];
                conn.read_exact(&mut got).unwrap();
                seen.push(got);
                conn.write_all(&answer).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn runs_the_exchange_with_credentials_on_a_nonblocking_socket() {
        let creds = Credentials { user: b"a".to_vec(), pass: b"b".to_vec() };
        let target = Target::Addr("[2001:db8::1]:443".parse().unwrap());
        let connect = codec::connect_request(&target).unwrap();
        let (addr, server) = proxy(vec![
            (vec![5, 2, 0, 2], vec![5, 2]),
            (vec![1, 1, b'a', 1, b'b'], vec![1, 0]),
            (connect.clone(), vec![5, 0, 0, 1, 10, 0, 0, 1, 0, 80]),
        ]);
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nonblocking(true).unwrap();
        handshake(stream.as_fd(), &target, Some(&creds), Duration::from_secs(5), &never).unwrap();
        assert_eq!(server.join().unwrap()[2], connect);
    }

    #[test]
    fn maps_a_refusal_and_a_silent_proxy_to_errnos() {
        let target = Target::Addr("10.0.0.1:80".parse().unwrap());
        let connect = codec::connect_request(&target).unwrap();
        let (addr, _server) =
            proxy(vec![(vec![5, 1, 0], vec![5, 0]), (connect, vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0])]);
        let stream = TcpStream::connect(addr).unwrap();
        assert_eq!(
            handshake(stream.as_fd(), &target, None, Duration::from_secs(5), &never),
            Err(libc::ECONNREFUSED)
        );

        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(silent.local_addr().unwrap()).unwrap();
        assert_eq!(
            handshake(stream.as_fd(), &target, None, Duration::from_millis(200), &never),
            Err(libc::ETIMEDOUT)
        );
    }
}
