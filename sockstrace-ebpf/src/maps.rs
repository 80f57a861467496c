//! The object's maps. Their names (the statics' names) are the ABI: userspace looks each up by
//! the name `sockstrace_common` gives it.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use sockstrace_common::socket_slot;
use sockstrace_common::{
    Config, ExemptCount, ProcRecord, Rule, SockFacts, UdpPeer, UdpPeerKey, EVENTS_BYTE_SIZE,
    EXEMPT_COUNTS_MAX_ENTRIES, FILENAME_LEN, GONE_MAX_ENTRIES, INBOUND_MAX_ENTRIES, MAX_EXEMPTIONS,
    MAX_RULES, PROCS_MAX_ENTRIES, SOCKETS_MAX_ENTRIES, SOCKETS_WAYS, UDP_PEERS_MAX_ENTRIES,
};

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTE_SIZE, 0);

#[map]
pub(crate) static DROPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Socket facts, a set-associative cache keyed by cookie (see `sockstrace_common::socket_slot`
/// and `shared::facts_of`). An array, not an LRU hash map: its lookups are a few instructions
/// the verifier inlines, and a new socket's facts are written in place, where an LRU insert
/// (list and bucket locks, a copy) cost a new socket about 0.45 us and each lookup a helper
/// call and a hash.
#[map]
pub(crate) static SOCKETS: Array<SockFacts> = Array::with_max_entries(SOCKETS_MAX_ENTRIES, 0);

/// `SOCKETS`' sets less one, for the size the loader gave the map (read-only data, which the
/// loader sets: `sockstrace_common::SOCKETS_SET_MASK_GLOBAL`).
#[unsafe(no_mangle)]
static SOCKETS_SET_MASK: u32 = SOCKETS_MAX_ENTRIES / SOCKETS_WAYS - 1;

/// The `SOCKETS` slot of way `way` of `cookie`'s set.
#[inline(always)]
pub(crate) fn sockets_slot(cookie: u64, way: u32) -> u32 {
    // SAFETY: a read of a static; volatile, so that the value the loader put in the object is
    // read rather than the one compiled in.
    let mask = unsafe { core::ptr::read_volatile(&raw const SOCKETS_SET_MASK) };
    socket_slot(cookie, way, mask)
}

#[map]
pub(crate) static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
pub(crate) static RULES: Array<Rule> = Array::with_max_entries(MAX_RULES, 0);

/// `BPF_F_NO_PREALLOC`: hash map entries are allocated as they come (the process maps are
/// large and mostly empty; preallocating them would cost start-up time and memory).
const NO_PREALLOC: u32 = 1;

/// Live processes the tracking tracepoints saw (audit only): tgid -> record.
#[map]
pub(crate) static PROCS: HashMap<u32, ProcRecord> = HashMap::with_max_entries(PROCS_MAX_ENTRIES, NO_PREALLOC);

/// Processes that exited lately: tgid -> record.
#[map]
pub(crate) static GONE: LruHashMap<u32, ProcRecord> = LruHashMap::with_max_entries(GONE_MAX_ENTRIES, 0);

/// Records that did not fit in `PROCS`.
#[map]
pub(crate) static PROCS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Where a `PROCS` record is put together.
#[map]
pub(crate) static PROC_SCRATCH: PerCpuArray<ProcRecord> = PerCpuArray::with_max_entries(1, 0);

/// Exempt cgroups (and their descendants): cgroup id -> 1.
#[map]
pub(crate) static EXEMPT_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(MAX_EXEMPTIONS, 0);

/// Exempt users: uid -> 1.
#[map]
pub(crate) static EXEMPT_UIDS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_EXEMPTIONS, 0);

/// Exempt executables: the path `execve` is given, NUL-padded -> 1.
#[map]
pub(crate) static EXEMPT_EXES: HashMap<[u8; FILENAME_LEN], u8> = HashMap::with_max_entries(MAX_EXEMPTIONS, 0);

/// Accepted TCP connections by cookie (see `sockstrace_common::INBOUND_MAP`).
#[map]
pub(crate) static INBOUND: LruHashMap<u64, u8> = LruHashMap::with_max_entries(INBOUND_MAX_ENTRIES, 0);

/// What exempt processes did around the proxy: tgid -> counts.
#[map]
pub(crate) static EXEMPT_COUNTS: LruHashMap<u32, ExemptCount> =
    LruHashMap::with_max_entries(EXEMPT_COUNTS_MAX_ENTRIES, 0);

/// The program socket's shim address (where the supervisor delivers a relayed reply from) to
/// the peer the program addressed; written by the supervisor only.
#[map]
pub(crate) static UDP_PEERS: HashMap<UdpPeerKey, UdpPeer> =
    HashMap::with_max_entries(UDP_PEERS_MAX_ENTRIES, 0);
