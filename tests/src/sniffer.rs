//! A packet socket on a host-side veth end, opened before a run: the frames seen there are
//! what left the program's namespace (ground truth for traffic that no sink on loopback sees).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct Sniffer {
    fd: OwnedFd,
}

impl Sniffer {
    /// Every frame on `ifname`, from now on (root: `CAP_NET_RAW`).
    pub fn on(ifname: &str) -> Sniffer {
        let name = std::ffi::CString::new(ifname).expect("interface name");
        // SAFETY: a C string we own.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0, "no interface {ifname}");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); checked below and owned by the OwnedFd.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto as i32) };
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind on our socket with a valid sockaddr_ll and its length.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "bind packet socket: {}", std::io::Error::last_os_error());
        Sniffer { fd }
    }

    /// The frames queued so far that contain `needle` (they are consumed).
    pub fn frames_with(&self, needle: &[u8]) -> usize {
        let mut buf = [0u8; 4096];
        let mut n = 0;
        loop {
            // SAFETY: recv into a buffer we own, with its length.
            let r = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r <= 0 {
                return n;
            }
            if buf[..r as usize].windows(needle.len()).any(|w| w == needle) {
                n += 1;
            }
        }
    }
}
