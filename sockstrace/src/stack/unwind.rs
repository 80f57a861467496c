//! From a captured stack to the addresses of its frames, innermost first.
//! x86_64: DWARF CFI (`.eh_frame`) with `framehop`, which also analyses
//! prologues and epilogues. i386 (framehop has no x86 support): the
//! frame-pointer chain, with the frames between the stack pointer and the
//! first frame pointer found by scanning for return addresses (words that
//! point just after a call instruction in a module).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};

use super::capture::Captured;
use super::module::{Bytes, Cache};

/// The most frames of one stack.
pub const MAX_FRAMES: usize = 64;
/// How far above the stack pointer a frame pointer is looked for.
const FRAME_POINTER_SCAN: u64 = 8 * 1024;

/// framehop's unwinders by process, kept while the process's executable
/// mappings stay the same (a new library or an exec makes a new one).
#[derive(Default)]
pub struct Unwinders {
    by_pid: Mutex<HashMap<u32, Kept>>,
}

/// A process's executable mappings: start, end, inode.
type CodeMappings = Vec<(u64, u64, u64)>;
/// An unwinder and the mappings it was made for.
type Kept = (CodeMappings, Arc<UnwinderX86_64<Bytes>>);

/// Processes whose unwinders are kept; past this the cache starts over.
const MAX_UNWINDERS: usize = 64;

impl Unwinders {
    fn get(&self, c: &Captured, cache: &Cache) -> Arc<UnwinderX86_64<Bytes>> {
        let code: CodeMappings =
            c.maps.iter().filter(|m| m.exec && m.is_file()).map(|m| (m.start, m.end, m.inode)).collect();
        if let Some((seen, unwinder)) = self.by_pid.lock().ok().as_ref().and_then(|m| m.get(&c.pid)) {
            if *seen == code {
                return unwinder.clone();
            }
        }
        let unwinder = Arc::new(build_unwinder(c, cache));
        if let Ok(mut by_pid) = self.by_pid.lock() {
            if by_pid.len() >= MAX_UNWINDERS {
                by_pid.clear();
            }
            by_pid.insert(c.pid, (code, unwinder.clone()));
        }
        unwinder
    }
}

/// The frames' addresses: the instruction pointer, then return addresses.
pub fn unwind(c: &Captured, cache: &Cache, unwinders: &Unwinders) -> Vec<u64> {
    if c.i386 {
        return unwind_frame_pointers(c, cache);
    }
    let unwinder = unwinders.get(c, cache);
    // The frame pointer is not in /proc/TID/syscall: the one the stack's frame
    // records show (code without frame pointers never reads it).
    unwind_cfi(c, &unwinder, guess_frame_pointer(c, cache).unwrap_or(0))
}

fn build_unwinder(c: &Captured, cache: &Cache) -> UnwinderX86_64<Bytes> {
    let mut unwinder: UnwinderX86_64<Bytes> = UnwinderX86_64::new();
    for m in c.maps.iter().filter(|m| m.exec && m.is_file()) {
        let Some(module) = cache.get(c.pid, m) else { continue };
        let Some(bias) = module.bias(m) else { continue };
        let range = |name: &str| module.section(name).map(|s| s.svma.clone());
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: range(".text"),
            text: module.section_bytes(".text"),
            got_svma: range(".got"),
            eh_frame_svma: range(".eh_frame"),
            eh_frame: module.section_bytes(".eh_frame"),
            eh_frame_hdr_svma: range(".eh_frame_hdr"),
            eh_frame_hdr: module.section_bytes(".eh_frame_hdr"),
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            debug_frame: None,
            text_segment_svma: None,
            text_segment: None,
        };
        unwinder.add_module(Module::new(m.path.clone(), m.start..m.end, bias, info));
    }
    unwinder
}

/// Walks the stack with DWARF CFI.
fn unwind_cfi(c: &Captured, unwinder: &UnwinderX86_64<Bytes>, bp: u64) -> Vec<u64> {
    let mut regs = UnwindRegsX86_64::new(c.pc, c.sp, bp);
    let mut unwind_cache = CacheX86_64::new();
    let mut read = |addr: u64| c.word(addr).ok_or(());
    let mut frames = vec![c.pc];
    let mut address = FrameAddress::from_instruction_pointer(c.pc);
    while frames.len() < MAX_FRAMES {
        match unwinder.unwind_frame(address, &mut regs, &mut unwind_cache, &mut read) {
            Ok(Some(ret)) if ret != 0 => {
                frames.push(ret);
                match FrameAddress::from_return_address(ret) {
                    Some(next) => address = next,
                    None => break,
                }
            }
            _ => break,
        }
    }
    frames
}

fn unwind_frame_pointers(c: &Captured, cache: &Cache) -> Vec<u64> {
    let word = 4;
    let mut frames = vec![c.pc];
    let bp = guess_frame_pointer(c, cache);
    // The frames below the first frame pointer (the system call wrapper, and
    // the innermost function of the program when it keeps no frame pointer).
    let scan_end = bp.unwrap_or_else(|| c.stack_end().min(c.sp + FRAME_POINTER_SCAN));
    let mut at = c.sp;
    while at < scan_end && frames.len() < MAX_FRAMES {
        if let Some(w) = c.word(at).filter(|&w| is_return_address(c, cache, w)) {
            // Stale return addresses linger in frames: keep a word only if its
            // call leads to the function of the frame above it, and not twice
            // in one function.
            let above = frames[frames.len() - 1];
            if calls_into(c, cache, w, above)
                && function_start(c, cache, w) != function_start(c, cache, above)
            {
                frames.push(w);
            }
        }
        at += word;
    }
    // The first frame record belongs to the function its return address
    // called: the scan ends at that function's frame (above it are its locals).
    if let Some(owner) = bp.and_then(|fp| c.word(fp + word)).and_then(|ret| direct_callee(c, cache, ret)) {
        if let Some(i) = frames.iter().skip(1).position(|&f| function_start(c, cache, f) == Some(owner)) {
            frames.truncate(i + 2);
        }
    }
    let mut bp = bp;
    while let Some(fp) = bp {
        if frames.len() >= MAX_FRAMES {
            break;
        }
        let Some(ret) = c.word(fp + word).filter(|&r| c.is_code(r)) else { break };
        frames.push(ret);
        bp = c.word(fp).filter(|&next| next > fp && next < c.stack_end());
    }
    frames
}

/// The frame pointer at the call: the lowest stack slot that starts a chain
/// of two frame records (saved frame pointer above it, return address into
/// code after it).
fn guess_frame_pointer(c: &Captured, cache: &Cache) -> Option<u64> {
    let word = if c.i386 { 4 } else { 8 };
    let is_record = |at: u64| -> Option<u64> {
        let next = c.word(at)?;
        if next <= at || next >= c.stack_end() {
            return None;
        }
        let ret = c.word(at + word)?;
        (c.is_code(ret) && is_return_address(c, cache, ret)).then_some(next)
    };
    let end = c.stack_end().min(c.sp + FRAME_POINTER_SCAN);
    (c.sp..end).step_by(word as usize).find(|&at| {
        is_record(at).is_some_and(|next| {
            is_record(next).is_some() || c.word(next + word).is_some_and(|r| is_return_address(c, cache, r))
        })
    })
}

/// The start of the function (symbol) around `avma`, if known.
fn function_start(c: &Captured, cache: &Cache, avma: u64) -> Option<u64> {
    let m = c.mapping(avma)?;
    let module = cache.get(c.pid, m)?;
    let svma = module.svma(m, avma)?;
    let (start, _) = module.symbol_range(svma.checked_sub(1)?)?;
    Some(start.wrapping_add(module.bias(m)?))
}

/// The function a `call rel32` before return address `ret` called (its
/// address in the process).
fn direct_callee(c: &Captured, cache: &Cache, ret: u64) -> Option<u64> {
    let m = c.mapping(ret)?;
    let module = cache.get(c.pid, m)?;
    let svma = module.svma(m, ret)?;
    let code = module.bytes_before(svma, 5)?;
    if code[0] != 0xE8 {
        return None;
    }
    let target = svma.wrapping_add(i32::from_le_bytes([code[1], code[2], code[3], code[4]]) as i64 as u64);
    let (start, _) = module.symbol_range(target)?;
    Some(start.wrapping_add(module.bias(m)?))
}

/// Whether the call before return address `ret` can have led to the
/// function around `callee_pc`: an indirect call (unknown target), a call
/// into a PLT stub, or a direct call to that function.
fn calls_into(c: &Captured, cache: &Cache, ret: u64, callee_pc: u64) -> bool {
    let Some(m) = c.mapping(ret) else { return false };
    let Some(module) = cache.get(c.pid, m) else { return false };
    let Some(svma) = module.svma(m, ret) else { return false };
    let Some(code) = module.bytes_before(svma, 5) else { return false };
    if code[0] != 0xE8 {
        return true;
    }
    let rel = i32::from_le_bytes([code[1], code[2], code[3], code[4]]);
    let target = svma.wrapping_add(rel as i64 as u64);
    if module.in_plt(target) {
        return true;
    }
    let target_start = module.symbol_range(target).map(|(start, _)| start);
    let callee = function_start(c, cache, callee_pc.wrapping_add(1));
    match (target_start, module.bias(m), callee) {
        (Some(t), Some(bias), Some(callee)) => t.wrapping_add(bias) == callee,
        _ => true,
    }
}

/// Whether `addr` follows a call instruction in a module.
fn is_return_address(c: &Captured, cache: &Cache, addr: u64) -> bool {
    let Some(m) = c.mapping(addr).filter(|m| m.exec) else { return false };
    let Some(module) = cache.get(c.pid, m) else { return false };
    let Some(code) = module.svma(m, addr).and_then(|svma| module.bytes_before(svma, 7)) else {
        return false;
    };
    follows_call(code)
}

/// Whether the 7 bytes before an address end with an x86 call instruction:
/// `call rel32`, or `call r/m` (opcode FF /2) with a register, a register plus
/// displacement, or an absolute or segment-relative address.
pub fn follows_call(b: &[u8]) -> bool {
    let [b0, b1, b2, b3, b4, b5, b6] = match b.try_into() {
        Ok::<[u8; 7], _>(a) => a,
        Err(_) => return false,
    };
    let _ = b0;
    let call_rm = |modrm: u8| (modrm >> 3) & 7 == 2;
    // call rel32
    b2 == 0xE8
        // call *%reg, call *(%reg)
        || (b5 == 0xFF && call_rm(b6) && (b6 >> 6 == 3 || (b6 >> 6 == 0 && b6 & 7 != 4 && b6 & 7 != 5)))
        // call *disp8(%reg)
        || (b4 == 0xFF && call_rm(b5) && b5 >> 6 == 1 && b5 & 7 != 4)
        // call *disp8(%reg,%reg,s)
        || (b3 == 0xFF && call_rm(b4) && b4 >> 6 == 1 && b4 & 7 == 4)
        // call *disp32(%reg), call *abs32 / *rip+disp32 (also behind a %gs prefix)
        || (b1 == 0xFF && call_rm(b2) && (b2 >> 6 == 2 || (b2 >> 6 == 0 && b2 & 7 == 5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_instructions_are_recognised() {
        // call rel32: e8 xx xx xx xx
        assert!(follows_call(&[0x90, 0x90, 0xE8, 1, 2, 3, 4]));
        // call *%eax: ff d0
        assert!(follows_call(&[0, 0, 0, 0, 0, 0xFF, 0xD0]));
        // call *0x8(%ebx): ff 53 08
        assert!(follows_call(&[0, 0, 0, 0, 0xFF, 0x53, 0x08]));
        // call *%gs:0x10: 65 ff 15 10 00 00 00
        assert!(follows_call(&[0x65, 0xFF, 0x15, 0x10, 0, 0, 0]));
        // call *0x10(%rip): ff 15 10 00 00 00 (after one other byte)
        assert!(follows_call(&[0x48, 0xFF, 0x15, 0x10, 0, 0, 0]));
        // Not calls: a jmp *%eax (ff e0), plain data.
        assert!(!follows_call(&[0, 0, 0, 0, 0, 0xFF, 0xE0]));
        assert!(!follows_call(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]));
        assert!(!follows_call(&[0xE8]));
    }
}
