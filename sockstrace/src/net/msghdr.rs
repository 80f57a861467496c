//! `struct msghdr`, `struct iovec` and `struct mmsghdr` as laid out by the
//! caller's ABI (x86_64, or i386 compat), parsed from bytes copied out of it.

/// The kernel's `UIO_MAXIOV`: more iovecs are `EMSGSIZE`, more mmsghdrs are cut.
pub const UIO_MAXIOV: usize = 1024;

/// Sizes and offsets of the message structures for one ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Size of a pointer and of `size_t` (8, or 4 for compat).
    word: usize,
    pub msghdr_size: usize,
    pub mmsghdr_size: usize,
    /// Offset of `msg_len` inside `struct mmsghdr`.
    pub mmsg_len_offset: usize,
    pub iovec_size: usize,
}

impl Layout {
    pub const X86_64: Layout =
        Layout { word: 8, msghdr_size: 56, mmsghdr_size: 64, mmsg_len_offset: 56, iovec_size: 16 };
    /// `struct compat_msghdr` and friends (i386 callers).
    pub const COMPAT: Layout =
        Layout { word: 4, msghdr_size: 28, mmsghdr_size: 32, mmsg_len_offset: 28, iovec_size: 8 };

    /// Reads a pointer or `size_t` field.
    fn word_at(&self, bytes: &[u8], offset: usize) -> u64 {
        match self.word {
            4 => u64::from(u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap_or([0; 4]))),
            _ => u64::from_ne_bytes(bytes[offset..offset + 8].try_into().unwrap_or([0; 8])),
        }
    }

    /// Offsets of name, namelen, iov, iovlen, control, controllen.
    fn offsets(&self) -> [usize; 6] {
        match self.word {
            4 => [0, 4, 8, 12, 16, 20],
            _ => [0, 8, 16, 24, 32, 40],
        }
    }
}

/// A `struct msghdr` as raw pointers into the caller.
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

/// A `struct iovec` as a pointer into the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoVec {
    pub base: u64,
    pub len: u64,
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
pub fn parse_msghdr(layout: &Layout, bytes: &[u8]) -> Result<MsgHdr, MsgError> {
    if bytes.len() < layout.msghdr_size {
        return Err(MsgError::Truncated);
    }
    let [name_at, namelen_at, iov_at, iovlen_at, control_at, controllen_at] = layout.offsets();
    let name = layout.word_at(bytes, name_at);
    let raw_namelen = i32::from_ne_bytes(bytes[namelen_at..namelen_at + 4].try_into().unwrap_or([0; 4]));
    if raw_namelen < 0 {
        return Err(MsgError::NegativeNameLen);
    }
    let namelen = if name == 0 { 0 } else { (raw_namelen as usize).min(crate::net::sockaddr::SOCKADDR_MAX) };
    let iovlen = layout.word_at(bytes, iovlen_at);
    if iovlen > UIO_MAXIOV as u64 {
        return Err(MsgError::TooManyIovecs);
    }
    Ok(MsgHdr {
        name,
        namelen,
        iov: layout.word_at(bytes, iov_at),
        iovlen,
        control: layout.word_at(bytes, control_at),
        controllen: layout.word_at(bytes, controllen_at),
    })
}

/// Parses `count` iovecs.
pub fn parse_iovecs(layout: &Layout, bytes: &[u8], count: usize) -> Result<Vec<IoVec>, MsgError> {
    let size = layout.iovec_size;
    if bytes.len() < count * size {
        return Err(MsgError::Truncated);
    }
    Ok((0..count)
        .map(|i| IoVec {
            base: layout.word_at(bytes, i * size),
            len: layout.word_at(bytes, i * size + layout.word),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msghdr64(name: u64, namelen: i32, iov: u64, iovlen: u64) -> Vec<u8> {
        let mut b = vec![0u8; 56];
        b[0..8].copy_from_slice(&name.to_ne_bytes());
        b[8..12].copy_from_slice(&namelen.to_ne_bytes());
        b[16..24].copy_from_slice(&iov.to_ne_bytes());
        b[24..32].copy_from_slice(&iovlen.to_ne_bytes());
        b[32..40].copy_from_slice(&0x5000u64.to_ne_bytes());
        b[40..48].copy_from_slice(&32u64.to_ne_bytes());
        b
    }

    fn msghdr32(words: [u32; 7]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn parses_x86_64_layout_like_the_kernel() {
        let m = parse_msghdr(&Layout::X86_64, &msghdr64(0x1000, 16, 0x2000, 2)).unwrap();
        assert_eq!(
            m,
            MsgHdr { name: 0x1000, namelen: 16, iov: 0x2000, iovlen: 2, control: 0x5000, controllen: 32 }
        );
    }

    #[test]
    fn parses_compat_layout() {
        let bytes = msghdr32([0x1000, 16, 0x2000, 3, 0x3000, 24, 0]);
        let m = parse_msghdr(&Layout::COMPAT, &bytes).unwrap();
        assert_eq!(
            m,
            MsgHdr { name: 0x1000, namelen: 16, iov: 0x2000, iovlen: 3, control: 0x3000, controllen: 24 }
        );
        let iovs: Vec<u8> = [7u32, 3, 9, 4].iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(
            parse_iovecs(&Layout::COMPAT, &iovs, 2).unwrap(),
            vec![IoVec { base: 7, len: 3 }, IoVec { base: 9, len: 4 }]
        );
    }

    #[test]
    fn clamps_and_rejects_like_the_kernel() {
        let l = Layout::X86_64;
        assert_eq!(parse_msghdr(&l, &msghdr64(0, 16, 0, 0)).unwrap().namelen, 0);
        assert_eq!(parse_msghdr(&l, &msghdr64(1, 4096, 0, 0)).unwrap().namelen, 128);
        assert_eq!(parse_msghdr(&l, &msghdr64(1, -1, 0, 0)), Err(MsgError::NegativeNameLen));
        assert_eq!(parse_msghdr(&l, &msghdr64(1, 16, 0, 1025)), Err(MsgError::TooManyIovecs));
        assert_eq!(parse_msghdr(&l, &[0u8; 10]), Err(MsgError::Truncated));
        assert_eq!(parse_msghdr(&Layout::COMPAT, &[0u8; 27]), Err(MsgError::Truncated));
    }

    #[test]
    fn parses_iovecs() {
        let mut b = vec![0u8; 32];
        b[0..8].copy_from_slice(&7u64.to_ne_bytes());
        b[8..16].copy_from_slice(&3u64.to_ne_bytes());
        b[16..24].copy_from_slice(&9u64.to_ne_bytes());
        let v = parse_iovecs(&Layout::X86_64, &b, 2).unwrap();
        assert_eq!(v, vec![IoVec { base: 7, len: 3 }, IoVec { base: 9, len: 0 }]);
        assert_eq!(parse_iovecs(&Layout::X86_64, &b, 3), Err(MsgError::Truncated));
    }
}
