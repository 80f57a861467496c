//! The files behind a stack's addresses: each ELF module parsed once (its
//! load segments, unwind sections, symbols, and DWARF from the file itself or
//! its debug file under /usr/lib/debug), cached by device, inode and build id.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

use super::capture::Mapping;

/// Modules kept at once; the cache starts over past this.
const MAX_MODULES: usize = 64;
/// Files larger than this are not read (raw module + offset only).
const MAX_FILE: u64 = 256 << 20;
/// Module bytes kept at once; the cache starts over past this.
const MAX_BYTES: usize = 512 << 20;

pub type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Bytes of a module file shared with the unwinder.
#[derive(Clone)]
pub struct Bytes {
    data: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }
}

/// One loadable segment: file bytes at `offset` are mapped at `vaddr`.
#[derive(Debug, Clone, Copy)]
struct Load {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// A section's address in the module and its bytes in the file.
#[derive(Debug, Clone)]
pub struct Section {
    pub svma: Range<u64>,
    file: Range<usize>,
}

pub struct ElfModule {
    pub path: String,
    data: Arc<Vec<u8>>,
    pub build_id: Option<Vec<u8>>,
    loads: Vec<Load>,
    sections: HashMap<&'static str, Section>,
    /// Function symbols (address, size, name), sorted by address.
    symbols: Vec<(u64, u64, String)>,
    debug_link: Option<String>,
    /// DWARF, loaded at the first lookup (addr2line's context is not `Sync`:
    /// one lookup at a time per module).
    dwarf: Mutex<Option<Option<addr2line::Context<Reader>>>>,
}

const SECTIONS: [&str; 7] = [".text", ".eh_frame", ".eh_frame_hdr", ".got", ".plt", ".plt.sec", ".plt.got"];

impl ElfModule {
    pub fn parse(path: &str, data: Vec<u8>) -> Result<ElfModule, String> {
        let file = object::File::parse(&*data).map_err(|e| format!("{path}: {e}"))?;
        let loads = file
            .segments()
            .map(|s| {
                let (offset, filesz) = s.file_range();
                Load { vaddr: s.address(), offset, filesz }
            })
            .collect();
        let mut sections = HashMap::new();
        for name in SECTIONS {
            if let Some(s) = file.section_by_name(name) {
                if let Some((off, len)) = s.file_range() {
                    let file = off as usize..(off + len) as usize;
                    if file.end <= data.len() {
                        sections.insert(name, Section { svma: s.address()..s.address() + s.size(), file });
                    }
                }
            }
        }
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .filter(|(_, _, name)| !name.is_empty())
            .collect();
        symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        symbols.dedup_by_key(|s| s.0);
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        let debug_link = file
            .gnu_debuglink()
            .ok()
            .flatten()
            .map(|(name, _crc)| String::from_utf8_lossy(name).into_owned());
        drop(file);
        Ok(ElfModule {
            path: path.to_string(),
            data: Arc::new(data),
            build_id,
            loads,
            sections,
            symbols,
            debug_link,
            dwarf: Mutex::new(None),
        })
    }

    /// The module's own address of `avma`, mapped by `m` (a mapping of this file).
    pub fn svma(&self, m: &Mapping, avma: u64) -> Option<u64> {
        let file_off = avma.checked_sub(m.start)? + m.offset;
        let load = self.loads.iter().find(|l| l.offset <= file_off && file_off < l.offset + l.filesz)?;
        Some(load.vaddr + (file_off - load.offset))
    }

    /// `avma - svma` for addresses in mapping `m`.
    pub fn bias(&self, m: &Mapping) -> Option<u64> {
        Some(m.start.wrapping_sub(self.svma(m, m.start)?))
    }

    /// `len` code bytes ending at module address `svma` (for checking that a
    /// stack word follows a call instruction).
    pub fn bytes_before(&self, svma: u64, len: u64) -> Option<&[u8]> {
        let start = svma.checked_sub(len)?;
        let load = self.loads.iter().find(|l| l.vaddr <= start && svma <= l.vaddr + l.filesz)?;
        let off = (load.offset + (start - load.vaddr)) as usize;
        self.data.get(off..off + len as usize)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    pub fn section_bytes(&self, name: &str) -> Option<Bytes> {
        let s = self.sections.get(name)?;
        Some(Bytes { data: self.data.clone(), range: s.file.clone() })
    }

    /// The function symbol that covers `svma`.
    pub fn symbol(&self, svma: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= svma).checked_sub(1)?;
        let (addr, size, name) = &self.symbols[i];
        (*size == 0 || svma < addr + size).then_some(name.as_str())
    }

    /// The start and size of the function symbol that covers `svma`.
    pub fn symbol_range(&self, svma: u64) -> Option<(u64, u64)> {
        let i = self.symbols.partition_point(|s| s.0 <= svma).checked_sub(1)?;
        let (addr, size, _) = &self.symbols[i];
        (*size == 0 || svma < addr + size).then_some((*addr, *size))
    }

    /// Whether `svma` is in a PLT section (calls to another module's functions).
    pub fn in_plt(&self, svma: u64) -> bool {
        [".plt", ".plt.sec", ".plt.got"]
            .iter()
            .any(|n| self.section(n).is_some_and(|s| s.svma.contains(&svma)))
    }

    /// DWARF frames at `probe` (innermost inlined first): function, file, line.
    pub fn lines(&self, probe: u64) -> Vec<(Option<String>, Option<String>, Option<u32>)> {
        let Ok(mut dwarf) = self.dwarf.lock() else { return Vec::new() };
        let Some(ctx) = dwarf.get_or_insert_with(|| self.load_dwarf()) else { return Vec::new() };
        let mut out = Vec::new();
        let Ok(mut frames) = ctx.find_frames(probe).skip_all_loads() else { return out };
        while let Ok(Some(frame)) = frames.next() {
            let function = frame.function.as_ref().and_then(|f| f.demangle().ok()).map(|f| f.into_owned());
            let (file, line) = frame.location.map_or((None, None), |l| (l.file.map(str::to_owned), l.line));
            out.push((function, file, line));
            if out.len() >= 8 {
                break;
            }
        }
        out
    }

    fn load_dwarf(&self) -> Option<addr2line::Context<Reader>> {
        let own = object::File::parse(&**self.data).ok()?;
        if own.section_by_name(".debug_info").is_some() {
            return dwarf_context(&own);
        }
        let debug = self.debug_file()?;
        let data = read_regular(&debug, None)?;
        let file = object::File::parse(&*data).ok()?;
        dwarf_context(&file)
    }

    /// The separate debug file: by build id, then by `.gnu_debuglink`.
    fn debug_file(&self) -> Option<PathBuf> {
        let mut candidates = Vec::new();
        if let Some(id) = self.build_id.as_deref().filter(|id| id.len() > 1) {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            candidates.push(PathBuf::from(format!(
                "/usr/lib/debug/.build-id/{}/{}.debug",
                &hex[..2],
                &hex[2..]
            )));
        }
        if let Some(link) = &self.debug_link {
            let dir = Path::new(&self.path).parent().unwrap_or(Path::new("/"));
            candidates
                .push(Path::new("/usr/lib/debug").join(dir.strip_prefix("/").unwrap_or(dir)).join(link));
            candidates.push(dir.join(".debug").join(link));
            candidates.push(dir.join(link));
        }
        candidates.into_iter().find(|p| p.is_file() && p != Path::new(&self.path))
    }
}

fn dwarf_context(file: &object::File<'_>) -> Option<addr2line::Context<Reader>> {
    let endian =
        if file.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        // Location lists and macros (often the largest sections) name no lines.
        let unused = matches!(
            id,
            gimli::SectionId::DebugLoc
                | gimli::SectionId::DebugLocLists
                | gimli::SectionId::DebugMacinfo
                | gimli::SectionId::DebugMacro
        );
        let data = (!unused)
            .then(|| file.section_by_name(id.name()))
            .flatten()
            .and_then(|s| s.uncompressed_data().ok())
            .map(|d| Arc::<[u8]>::from(&*d))
            .unwrap_or_else(|| Arc::from(&[][..]));
        Ok(gimli::EndianArcSlice::new(data, endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// Parsed modules by (device, inode).
#[derive(Default)]
pub struct Cache {
    modules: Mutex<HashMap<(u64, u64), Arc<ElfModule>>>,
}

impl Cache {
    /// The module a file mapping of process `pid` shows, parsed once.
    pub fn get(&self, pid: u32, m: &Mapping) -> Option<Arc<ElfModule>> {
        if !m.is_file() {
            return None;
        }
        let key = (m.dev, m.inode);
        if let Some(found) = self.modules.lock().ok()?.get(&key) {
            return Some(found.clone());
        }
        let module = Arc::new(load(pid, m)?);
        let mut modules = self.modules.lock().ok()?;
        let bytes: usize = modules.values().map(|m| m.data.len()).sum();
        if modules.len() >= MAX_MODULES || bytes + module.data.len() > MAX_BYTES {
            modules.clear();
        }
        modules.insert(key, module.clone());
        Some(module)
    }
}

/// Reads the file of mapping `m`: at its path if that is the same file
/// (inode), else through the process's root (another mount namespace).
fn load(pid: u32, m: &Mapping) -> Option<ElfModule> {
    let direct = PathBuf::from(&m.path);
    let rooted = PathBuf::from(format!("/proc/{pid}/root{}", m.path));
    let data = [direct, rooted].into_iter().find_map(|p| read_regular(&p, Some(m.inode)))?;
    ElfModule::parse(&m.path, data).ok()
}

/// The bytes of the regular file at `path` (of inode `inode` when given),
/// judged on the opened file, never on the path: the program names these
/// paths (its mappings, its `.gnu_debuglink`) and can swap a FIFO in, or name
/// a file that never ends (`/proc/kmsg`, tracefs's `trace_pipe`, both
/// regular files of size 0). Opened non-blocking (a FIFO does not wait for a
/// writer), it must be a non-empty regular file of at most `MAX_FILE` bytes,
/// and only its size is read.
fn read_regular(path: &Path, inode: Option<u64>) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let md = file.metadata().ok()?;
    if !md.is_file() || md.len() == 0 || md.len() > MAX_FILE || inode.is_some_and(|i| md.ino() != i) {
        return None;
    }
    let mut data = Vec::with_capacity(md.len() as usize);
    file.take(md.len()).read_to_end(&mut data).ok()?;
    Some(data)
}
