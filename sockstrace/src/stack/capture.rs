//! Taking a blocked thread's stack while its call is held: the registers
//! from `/proc/TID/syscall`, its memory map, and a bounded copy of the stack.
//! Everything the unwinder and symbolizer need later is copied here, before
//! the call is answered (the thread cannot run meanwhile, so its registers and
//! stack are stable; the caller confirms the notification is still valid).

/// The most stack bytes copied per leak.
pub const STACK_BYTES: usize = 64 * 1024;

/// One line of `/proc/TID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub exec: bool,
    pub offset: u64,
    /// `(major << 32) | minor` of the file's device.
    pub dev: u64,
    pub inode: u64,
    /// The file, `[vdso]`, `[stack]`, or empty for anonymous memory.
    pub path: String,
}

impl Mapping {
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether a file backs it (a module).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }
}

/// What a thread blocked in a system call looked like.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The caller used the i386 ABI: 32-bit words on its stack.
    pub i386: bool,
    pub pc: u64,
    pub sp: u64,
    /// The stack from `sp` up (at most [`STACK_BYTES`]).
    pub stack: Vec<u8>,
    pub maps: Vec<Mapping>,
    /// The thread group, for reading module files through `/proc/PID/root`.
    pub pid: u32,
}

impl Captured {
    /// The word at `addr` on the copied stack.
    pub fn word(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.sp)?).ok()?;
        if self.i386 {
            let b = self.stack.get(off..off.checked_add(4)?)?;
            Some(u32::from_le_bytes(b.try_into().ok()?) as u64)
        } else {
            let b = self.stack.get(off..off.checked_add(8)?)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        }
    }

    pub fn stack_end(&self) -> u64 {
        self.sp + self.stack.len() as u64
    }

    pub fn mapping(&self, addr: u64) -> Option<&Mapping> {
        self.maps.iter().find(|m| m.contains(addr))
    }

    /// Whether `addr` is in executable memory.
    pub fn is_code(&self, addr: u64) -> bool {
        self.mapping(addr).is_some_and(|m| m.exec)
    }
}

/// The stack pointer and instruction pointer of `/proc/TID/syscall`
/// ("NR ARG1..ARG6 SP PC", hex), or why there are none ("running": the
/// thread is not blocked; "-1 SP PC": not in a system call).
pub fn parse_syscall(text: &str) -> Result<(u64, u64), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
    match words.as_slice() {
        [nr, .., sp, pc] if words.len() == 9 && *nr != "-1" => match (hex(sp), hex(pc)) {
            (Some(sp), Some(pc)) => Ok((sp, pc)),
            _ => Err(format!("unreadable /proc/TID/syscall: {}", text.trim())),
        },
        ["running"] => Err("the thread was running, not blocked in the call".into()),
        _ => Err(format!("the thread is not in a system call ({})", text.trim())),
    }
}

/// Parses `/proc/TID/maps`.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_map_line).collect()
}

fn parse_map_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start().to_string();
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    Some(Mapping {
        start: hex(start)?,
        end: hex(end)?,
        exec: perms.as_bytes().get(2) == Some(&b'x'),
        offset: hex(offset)?,
        dev: (hex(major)? << 32) | hex(minor)?,
        inode: inode.parse().ok()?,
        path,
    })
}

/// Takes the stack of thread `tid` (of process `pid`), blocked in a call.
pub fn capture(pid: u32, tid: u32, i386: bool) -> Result<Captured, String> {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/proc/{tid}/{what}")).map_err(|e| format!("/proc/{tid}/{what}: {e}"))
    };
    let (sp, pc) = parse_syscall(&read("syscall")?)?;
    let maps = parse_maps(&read("maps")?);
    let limit = maps.iter().find(|m| m.contains(sp)).map_or(0, |m| m.end - sp);
    let len = (limit.min(STACK_BYTES as u64)) as usize;
    let stack = read_memory(tid, sp, len);
    if stack.is_empty() {
        return Err(format!("cannot read the stack at {sp:#x}"));
    }
    Ok(Captured { i386, pc, sp, stack, maps, pid })
}

/// Reads up to `len` bytes at `addr` in `tid` (a short read keeps what came).
fn read_memory(tid: u32, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return buf;
    }
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` covers exactly our buffer of `len` bytes; `remote` is only
    // interpreted in the other process's address space by the kernel.
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    buf.truncate(n.max(0) as usize);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_line_gives_sp_and_pc() {
        let line = "42 0x3 0x7ffd5c 0x10 0x0 0x0 0x0 0x7ffd5b1c2a38 0x7f1e2b3c4d5e\n";
        assert_eq!(parse_syscall(line), Ok((0x7ffd5b1c2a38, 0x7f1e2b3c4d5e)));
        assert!(parse_syscall("running\n").unwrap_err().contains("running"));
        assert!(parse_syscall("-1 0x7ffd5b1c2a38 0x7f1e2b3c4d5e\n")
            .unwrap_err()
            .contains("not in a system call"));
        assert!(parse_syscall("").is_err());
    }

    #[test]
    fn maps_lines_parse() {
        let text = "55d0c0a00000-55d0c0a01000 r-xp 00001000 fe:01 1234   /usr/bin/prog with space\n\
                    7ffd5b1a0000-7ffd5b1c3000 rw-p 00000000 00:00 0                          [stack]\n\
                    7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 3);
        assert!(maps[0].exec && maps[0].is_file());
        assert_eq!(maps[0].path, "/usr/bin/prog with space");
        assert_eq!(maps[0].offset, 0x1000);
        assert_eq!(maps[0].dev, (0xfe << 32) | 1);
        assert_eq!(maps[1].path, "[stack]");
        assert!(!maps[1].is_file() && !maps[1].exec);
        assert_eq!(maps[2].path, "");
    }

    #[test]
    fn words_come_from_the_copy_only() {
        let mut stack = vec![0u8; 16];
        stack[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        let c = Captured { i386: false, pc: 0, sp: 0x1000, stack, maps: vec![], pid: 1 };
        assert_eq!(c.word(0x1008), Some(0x1122_3344_5566_7788));
        assert_eq!(c.word(0x1009), None);
        assert_eq!(c.word(0xff8), None);
        let c32 = Captured { i386: true, ..c };
        assert_eq!(c32.word(0x1008), Some(0x5566_7788));
    }
}
