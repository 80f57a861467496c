//! The x86_64 layouts of `struct msghdr`, `struct iovec` and `struct mmsghdr`,
//! parsed from bytes copied out of the tracee.

/// `sizeof(struct msghdr)` on x86_64.
pub const MSGHDR_SIZE: usize = 56;
/// `sizeof(struct mmsghdr)` on x86_64: a msghdr, `msg_len`, padding.
pub const MMSGHDR_SIZE: usize = 64;
/// Offset of `msg_len` inside `struct mmsghdr`.
pub const MMSG_LEN_OFFSET: usize = 56;
/// `sizeof(struct iovec)` on x86_64.
pub const IOVEC_SIZE: usize = 16;
/// The kernel's `UIO_MAXIOV`: more iovecs are `EMSGSIZE`, more mmsghdrs are cut.
pub const UIO_MAXIOV: usize = 1024;

/// A `struct msghdr` as raw pointers into the tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHdr {
    pub name: u64,
    /// Already clamped as the kernel clamps it (0 without a name, at most 128).
    pub namelen: usize,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
}

/// A `struct iovec` as a pointer into the tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoVec {
    pub base: u64,
    pub len: u64,
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_ne_bytes(raw)
}

fn i32_at(bytes: &[u8], offset: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[offset..offset + 4]);
    i32::from_ne_bytes(raw)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    #[error("truncated structure")]
    Truncated,
    #[error("negative name length")]
    NegativeNameLen,
    #[error("too many iovecs")]
    TooManyIovecs,
}

impl MsgError {
    /// The errno the kernel gives for the same malformed input.
    pub fn errno(self) -> i32 {
        match self {
            MsgError::Truncated => libc::EFAULT,
            MsgError::NegativeNameLen => libc::EINVAL,
            MsgError::TooManyIovecs => libc::EMSGSIZE,
        }
    }
}

/// Parses a msghdr, applying the kernel's `copy_msghdr_from_user` rules.
pub fn parse_msghdr(bytes: &[u8]) -> Result<MsgHdr, MsgError> {
    if bytes.len() < MSGHDR_SIZE {
        return Err(MsgError::Truncated);
    }
    let name = u64_at(bytes, 0);
    let raw_namelen = i32_at(bytes, 8);
    if raw_namelen < 0 {
        return Err(MsgError::NegativeNameLen);
    }
    let namelen = if name == 0 { 0 } else { (raw_namelen as usize).min(crate::net::sockaddr::SOCKADDR_MAX) };
    let iovlen = u64_at(bytes, 24);
    if iovlen > UIO_MAXIOV as u64 {
        return Err(MsgError::TooManyIovecs);
    }
    Ok(MsgHdr {
        name,
        namelen,
        iov: u64_at(bytes, 16),
        iovlen,
        control: u64_at(bytes, 32),
        controllen: u64_at(bytes, 40),
    })
}

/// Parses `count` iovecs.
pub fn parse_iovecs(bytes: &[u8], count: usize) -> Result<Vec<IoVec>, MsgError> {
    if bytes.len() < count * IOVEC_SIZE {
        return Err(MsgError::Truncated);
    }
    Ok((0..count)
        .map(|i| IoVec { base: u64_at(bytes, i * IOVEC_SIZE), len: u64_at(bytes, i * IOVEC_SIZE + 8) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msghdr_bytes(name: u64, namelen: i32, iov: u64, iovlen: u64) -> Vec<u8> {
        let mut b = vec![0u8; MSGHDR_SIZE];
        b[0..8].copy_from_slice(&name.to_ne_bytes());
        b[8..12].copy_from_slice(&namelen.to_ne_bytes());
        b[16..24].copy_from_slice(&iov.to_ne_bytes());
        b[24..32].copy_from_slice(&iovlen.to_ne_bytes());
        b[32..40].copy_from_slice(&0x5000u64.to_ne_bytes());
        b[40..48].copy_from_slice(&32u64.to_ne_bytes());
        b
    }

    #[test]
    fn parses_layout_like_the_kernel() {
        let m = parse_msghdr(&msghdr_bytes(0x1000, 16, 0x2000, 2)).unwrap();
        assert_eq!(
            m,
            MsgHdr { name: 0x1000, namelen: 16, iov: 0x2000, iovlen: 2, control: 0x5000, controllen: 32 }
        );
    }

    #[test]
    fn clamps_and_rejects_like_the_kernel() {
        assert_eq!(parse_msghdr(&msghdr_bytes(0, 16, 0, 0)).unwrap().namelen, 0);
        assert_eq!(parse_msghdr(&msghdr_bytes(1, 4096, 0, 0)).unwrap().namelen, 128);
        assert_eq!(parse_msghdr(&msghdr_bytes(1, -1, 0, 0)), Err(MsgError::NegativeNameLen));
        assert_eq!(parse_msghdr(&msghdr_bytes(1, 16, 0, 1025)), Err(MsgError::TooManyIovecs));
        assert_eq!(parse_msghdr(&[0u8; 10]), Err(MsgError::Truncated));
    }

    #[test]
    fn parses_iovecs() {
        let mut b = vec![0u8; 32];
        b[0..8].copy_from_slice(&7u64.to_ne_bytes());
        b[8..16].copy_from_slice(&3u64.to_ne_bytes());
        b[16..24].copy_from_slice(&9u64.to_ne_bytes());
        let v = parse_iovecs(&b, 2).unwrap();
        assert_eq!(v, vec![IoVec { base: 7, len: 3 }, IoVec { base: 9, len: 0 }]);
        assert_eq!(parse_iovecs(&b, 3), Err(MsgError::Truncated));
    }
}
