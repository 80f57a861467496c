//! The op grammar: a seeded generator of fuzzclient programs (one op per line), with the
//! coverage keys each op exercises. Pure: no I/O besides reading option names from the
//! kernel headers once (`OptionTable::from_headers`).

use std::collections::BTreeSet;

/// SplitMix64: small, seedable, the same sequence on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `pct`/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// Seed of sequence `index` of a run seeded with `seed`.
    pub fn sequence_seed(seed: u64, index: u64) -> u64 {
        let mut r = Rng(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next()
    }
}

/// The run's addresses, fixed by the environment (env.rs makes them).
pub mod addrs {
    pub const PROXY_PORT: u16 = 19050;
    pub const NEAR4: [u8; 4] = [10, 77, 0, 1];
    pub const FAR4: [u8; 4] = [10, 77, 0, 2];
    pub const FAR4_B: [u8; 4] = [10, 77, 0, 3];
    pub const NEAR6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pub const FAR6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    pub const FAR6_B: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
    /// Non-allowed loopback sinks (UDP and TCP on each port of `SINK_PORTS`).
    pub const SINKS4: [[u8; 4]; 3] = [[127, 0, 0, 2], [127, 0, 0, 1], NEAR4];
    pub const SINK_PORTS: [u16; 3] = [9, 80, 53];
}

/// Option names per level, read from the kernel headers.
#[derive(Clone, Debug, Default)]
pub struct OptionTable {
    /// (level, optname, name)
    pub options: Vec<(i32, i32, String)>,
}

impl OptionTable {
    /// SOL_SOCKET (asm-generic/socket.h SO_*), IPPROTO_IP (linux/in.h IP_*), IPPROTO_IPV6
    /// (linux/in6.h, linux/ipv6.h IPV6_*), IPPROTO_TCP (linux/tcp.h TCP_*), IPPROTO_UDP
    /// (linux/udp.h UDP_*). Falls back to a built-in list when the headers are missing.
    pub fn from_headers() -> Self {
        let sources: &[(i32, &str, &str)] = &[
            (1, "/usr/include/asm-generic/socket.h", "SO_"),
            (0, "/usr/include/linux/in.h", "IP_"),
            (41, "/usr/include/linux/in6.h", "IPV6_"),
            (41, "/usr/include/linux/ipv6.h", "IPV6_"),
            (6, "/usr/include/linux/tcp.h", "TCP_"),
            (17, "/usr/include/linux/udp.h", "UDP_"),
        ];
        let mut table = OptionTable::default();
        for (level, path, prefix) in sources {
            if let Ok(text) = std::fs::read_to_string(path) {
                table.options.extend(parse_defines(&text, prefix).into_iter().map(|(n, v)| (*level, v, n)));
            }
        }
        if table.options.len() < 20 {
            table.options = FALLBACK.iter().map(|(l, o, n)| (*l, *o, n.to_string())).collect();
        }
        table.options.sort();
        table.options.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        table
    }

    pub fn name(&self, level: i32, opt: i32) -> Option<&str> {
        self.options.iter().find(|(l, o, _)| *l == level && *o == opt).map(|(_, _, n)| n.as_str())
    }
}

const FALLBACK: &[(i32, i32, &str)] = &[
    (1, 25, "SO_BINDTODEVICE"),
    (1, 62, "SO_BINDTOIFINDEX"),
    (1, 36, "SO_MARK"),
    (1, 2, "SO_REUSEADDR"),
    (1, 12, "SO_PRIORITY"),
    (0, 4, "IP_OPTIONS"),
    (0, 8, "IP_PKTINFO"),
    (0, 15, "IP_FREEBIND"),
    (0, 19, "IP_TRANSPARENT"),
    (0, 32, "IP_MULTICAST_IF"),
    (0, 35, "IP_ADD_MEMBERSHIP"),
    (0, 50, "IP_UNICAST_IF"),
    (0, 2, "IP_TTL"),
    (41, 57, "IPV6_RTHDR"),
    (41, 9, "IPV6_NEXTHOP"),
    (41, 50, "IPV6_PKTINFO"),
    (41, 26, "IPV6_V6ONLY"),
    (41, 76, "IPV6_UNICAST_IF"),
    (41, 17, "IPV6_MULTICAST_IF"),
    (41, 59, "IPV6_DSTOPTS"),
    (6, 30, "TCP_FASTOPEN_CONNECT"),
    (6, 23, "TCP_FASTOPEN"),
    (6, 1, "TCP_NODELAY"),
    (17, 103, "UDP_SEGMENT"),
    (17, 1, "UDP_CORK"),
];

/// `#define PREFIXNAME NUMBER` lines (decimal numbers below 1000).
pub fn parse_defines(text: &str, prefix: &str) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (words.next(), words.next()) else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        if let Ok(v) = value.trim_matches(|c| c == '(' || c == ')').parse::<i32>() {
            if (0..1000).contains(&v) {
                out.push((name.to_string(), v));
            }
        }
    }
    out
}

/// One coverage key: what an op explored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cov {
    /// (family, type without flags, protocol) of a socket call.
    Socket(i32, i32, i32),
    /// (level, optname) of a setsockopt.
    Sockopt(i32, i32),
    /// (level, type) of a control message.
    Cmsg(i32, i32),
    /// (syscall name, ABI name).
    Syscall(&'static str, &'static str),
}

/// One generated operation: the fuzzclient line, a human gloss for the reproducer, coverage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub line: String,
    pub gloss: String,
    pub cov: Vec<Cov>,
}

/// What the generator may produce.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Only allowed things: TCP connects and sends to the proxy (false-positive check).
    pub allowed_only: bool,
    /// Known, open classes to leave out (see `CLASSES`).
    pub skip: BTreeSet<String>,
    /// The veth's ifindex in the run's namespace.
    pub veth_ifindex: i32,
    /// The veth's name in the run's namespace.
    pub veth_name: String,
}

/// Classes `--known-open` can name, with the (level, optname) pairs and cmsg kinds they cover.
pub const CLASSES: &[(&str, &[(i32, i32)])] = &[
    ("rthdr", &[(41, 57), (41, 59), (41, 54), (41, 55), (41, 4), (41, 5)]),
    ("bindtodevice", &[(1, 25), (1, 62)]),
    ("ip-options", &[(0, 4), (0, 7)]),
    ("pktinfo", &[(0, 8), (41, 50)]),
    ("nexthop", &[(41, 9)]),
    ("unicast-if", &[(0, 50), (41, 76), (0, 32), (41, 17)]),
    ("multicast", &[(0, 35), (0, 36), (0, 39), (0, 40), (0, 42), (41, 20), (41, 21), (41, 42)]),
    ("packet", &[]),
    ("raw", &[]),
];

pub fn class_names() -> Vec<&'static str> {
    CLASSES.iter().map(|(n, _)| *n).collect()
}

impl Config {
    fn skipped(&self, level: i32, opt: i32) -> bool {
        CLASSES.iter().any(|(name, pairs)| self.skip.contains(*name) && pairs.contains(&(level, opt)))
    }
    fn skips(&self, class: &str) -> bool {
        self.skip.contains(class)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sockaddr_in bytes.
pub fn sin(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut v = vec![2, 0];
    v.extend(port.to_be_bytes());
    v.extend(ip);
    v.extend([0; 8]);
    v
}

/// sockaddr_in6 bytes.
pub fn sin6(ip: [u8; 16], port: u16, scope: u32) -> Vec<u8> {
    let mut v = vec![10, 0];
    v.extend(port.to_be_bytes());
    v.extend([0; 4]);
    v.extend(ip);
    v.extend(scope.to_ne_bytes());
    v
}

pub fn mapped(ip: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&ip);
    a
}

const LO6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// A destination port: 9 (the planted hole, discard) often.
fn port(rng: &mut Rng) -> u16 {
    match rng.below(10) {
        0..=3 => 9,
        4 => 80,
        5 => 53,
        6 => addrs::PROXY_PORT,
        7 => 443,
        _ => rng.below(65536) as u16,
    }
}

/// An IPv4 destination from the grammar.
fn ip4(rng: &mut Rng) -> [u8; 4] {
    *rng.pick(&[
        [127, 0, 0, 2],
        [127, 0, 0, 1],
        [127, 0, 0, 3],
        [127, 1, 2, 3],
        addrs::FAR4,
        addrs::FAR4_B,
        addrs::NEAR4,
        [0, 0, 0, 0],
        [10, 77, 0, 99],
        [224, 0, 0, 1],
        [255, 255, 255, 255],
        [10, 77, 0, 255],
    ])
}

fn ip6(rng: &mut Rng) -> [u8; 16] {
    *rng.pick(&[
        LO6,
        addrs::FAR6,
        addrs::FAR6_B,
        addrs::NEAR6,
        [0; 16],
        mapped([127, 0, 0, 2]),
        mapped(addrs::FAR4),
        mapped([127, 0, 0, 1]),
        [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ])
}

/// The allowed proxy, in one of its spellings.
fn proxy_addr(rng: &mut Rng, family: i32) -> Vec<u8> {
    if family == 10 {
        if rng.pct(50) {
            sin6(LO6, addrs::PROXY_PORT, 0)
        } else {
            sin6(mapped([127, 0, 0, 1]), addrs::PROXY_PORT, 0)
        }
    } else {
        sin([127, 0, 0, 1], addrs::PROXY_PORT)
    }
}

/// A destination address for a socket of `family`, sometimes of another family or length.
fn dest(rng: &mut Rng, cfg: &Config, family: i32) -> Vec<u8> {
    if cfg.allowed_only {
        return proxy_addr(rng, family);
    }
    let fam = if rng.pct(85) { family } else { *rng.pick(&[2, 10, 1, 17, 0]) };
    let mut a = match fam {
        10 => {
            let scope = match rng.below(6) {
                0 => cfg.veth_ifindex as u32,
                1 => 1,
                2 => rng.below(100) as u32,
                _ => 0,
            };
            if rng.pct(15) {
                proxy_addr(rng, 10)
            } else {
                sin6(ip6(rng), port(rng), scope)
            }
        }
        1 => {
            let mut v = vec![1, 0];
            v.extend(if rng.pct(50) { b"\0fz-abstract".to_vec() } else { b"/tmp/fz-sock\0".to_vec() });
            v
        }
        17 => {
            // sockaddr_ll: ETH_P_IP, the veth, a broadcast MAC.
            let mut v = vec![17, 0, 0x08, 0x00];
            v.extend(cfg.veth_ifindex.to_ne_bytes());
            v.extend([1, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
            v
        }
        0 => vec![0, 0, 0, 9, 127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
        _ => {
            if rng.pct(12) {
                proxy_addr(rng, 2)
            } else {
                sin(ip4(rng), port(rng))
            }
        }
    };
    // Odd lengths.
    if rng.pct(8) {
        let len = *rng.pick(&[0usize, 2, 8, 15, 17, 24, 27, 29, 110, 128]);
        a.resize(len, 0);
    }
    a
}

/// An IPv6 type-4 (segment routing) or type-0 routing header through far addresses.
fn rthdr(rng: &mut Rng) -> Vec<u8> {
    let segs: Vec<[u8; 16]> = (0..1 + rng.below(3)).map(|_| ip6(rng)).collect();
    let n = segs.len() as u8;
    let kind = *rng.pick(&[4u8, 4, 0, 2]);
    let mut v = match kind {
        4 => vec![0, 2 * n, 4, n - 1, n - 1, 0, 0, 0],
        _ => vec![0, 2 * n, kind, n, 0, 0, 0, 0],
    };
    for s in segs {
        v.extend(s);
    }
    v
}

/// IPv4 options: loose or strict source route, record route, through far addresses.
fn ip_options(rng: &mut Rng) -> Vec<u8> {
    let code = *rng.pick(&[131u8, 131, 137, 7]);
    let hops: Vec<[u8; 4]> = (0..1 + rng.below(3)).map(|_| ip4(rng)).collect();
    let mut v = vec![code, 3 + 4 * hops.len() as u8, 4];
    for h in hops {
        v.extend(h);
    }
    while v.len() % 4 != 0 {
        v.push(1);
    }
    v
}

fn int(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A value for (level, opt).
fn sockopt_value(rng: &mut Rng, cfg: &Config, level: i32, opt: i32) -> Vec<u8> {
    match (level, opt) {
        (41, 57) | (41, 54) | (41, 55) | (41, 59) | (41, 4) | (41, 5) if rng.pct(80) => rthdr(rng),
        (0, 4) if rng.pct(85) => ip_options(rng),
        (1, 25) => {
            let mut v = if rng.pct(70) { cfg.veth_name.clone().into_bytes() } else { b"lo".to_vec() };
            v.push(0);
            v
        }
        (1, 62) | (41, 76) | (41, 17) => int(if rng.pct(80) { cfg.veth_ifindex } else { 1 }),
        (0, 50) => (cfg.veth_ifindex as u32).to_be_bytes().to_vec(),
        (41, 9) => sin6(ip6(rng), 0, 0),
        (41, 50) => {
            let mut v = ip6(rng).to_vec();
            v.extend(cfg.veth_ifindex.to_ne_bytes());
            v
        }
        (0, 32) | (0, 35) | (0, 36) => {
            let mut v = vec![224, 0, 0, 251];
            v.extend(addrs::NEAR4);
            v.extend(cfg.veth_ifindex.to_ne_bytes());
            v
        }
        (41, 26) => int(0),
        _ => match rng.below(8) {
            0 => int(0),
            1 | 2 => int(1),
            3 => int(-1),
            4 => int(cfg.veth_ifindex),
            5 => int(rng.below(70000) as i32),
            6 => (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
            _ => int(255),
        },
    }
}

/// Socket families the grammar draws from (the named ones often, then any of `0..46`).
pub const FAMILIES: std::ops::Range<i32> = 0..46;
/// Socket types the grammar draws from.
pub const TYPES: &[i32] = &[1, 2, 3, 4, 5, 6, 10];
/// Protocols the grammar names (besides 0, TCP, UDP and random numbers below 256).
pub const NAMED_PROTOCOLS: &[i32] = &[1, 58, 255, 136, 132, 262, 2, 47, 4, 41];

/// The control messages the grammar sends: (level, type).
pub const CMSG_KINDS: &[(i32, i32)] = &[
    (0, 8),    // IP_PKTINFO
    (0, 7),    // IP_RETOPTS
    (0, 2),    // IP_TTL
    (0, 1),    // IP_TOS
    (41, 50),  // IPV6_PKTINFO
    (41, 57),  // IPV6_RTHDR
    (41, 9),   // IPV6_NEXTHOP
    (41, 52),  // IPV6_HOPLIMIT
    (41, 59),  // IPV6_DSTOPTS
    (17, 103), // UDP_SEGMENT
    (1, 1),    // SCM_RIGHTS
    (1, 36),   // SO_MARK
    (0, 4),    // IP_OPTIONS
];

/// A control message (level, type, data).
fn cmsg(rng: &mut Rng, cfg: &Config) -> Option<(i32, i32, Vec<u8>)> {
    for _ in 0..8 {
        let (level, kind) = *rng.pick(CMSG_KINDS);
        if cfg.skipped(level, kind) || (kind == 7 && level == 0 && cfg.skips("ip-options")) {
            continue;
        }
        let data = match (level, kind) {
            (0, 8) => {
                let mut v = cfg.veth_ifindex.to_ne_bytes().to_vec();
                v.extend(ip4(rng));
                v.extend(ip4(rng));
                v
            }
            (0, 7) | (0, 4) => ip_options(rng),
            (41, 50) => {
                let mut v = ip6(rng).to_vec();
                v.extend(cfg.veth_ifindex.to_ne_bytes());
                v
            }
            (41, 57) | (41, 59) => rthdr(rng),
            (41, 9) => sin6(ip6(rng), 0, 0),
            (17, 103) => 1200u16.to_ne_bytes().to_vec(),
            (1, 1) => [3i32, 4].iter().flat_map(|f| f.to_ne_bytes()).collect(),
            _ => int(rng.below(300) as i32),
        };
        return Some((level, kind, data));
    }
    None
}

/// ABI names for coverage, by client and `abi` op: the x86_64 client's native calls, its
/// `int 0x80` calls and its socketcall through `int 0x80`; the i386 client's calls through
/// the vDSO and through `int 0x80` (a real 32-bit process), and its socketcall.
const ABIS: [&str; 3] = ["x86_64", "int80-from-x86_64", "socketcall-from-x86_64"];
const ABIS_I386: [&str; 3] = ["i386", "i386-int80", "i386-socketcall"];

/// The generator of one sequence.
pub struct Gen<'a> {
    rng: Rng,
    cfg: &'a Config,
    table: &'a OptionTable,
    ops: Vec<Op>,
    abi: usize,
    seq: u64,
    /// Family of each slot's socket, when known.
    fam: [i32; 8],
    /// For the i386 client (only coverage names differ: the ops are the same).
    i386: bool,
}

impl<'a> Gen<'a> {
    pub fn new(seed: u64, seq: u64, cfg: &'a Config, table: &'a OptionTable) -> Self {
        Gen { rng: Rng::new(seed), cfg, table, ops: Vec::new(), abi: 0, seq, fam: [2; 8], i386: false }
    }

    /// Generates for the i386 client.
    pub fn i386(mut self, yes: bool) -> Self {
        self.i386 = yes;
        self
    }

    fn abi_name(&self, abi: usize) -> &'static str {
        if self.i386 {
            ABIS_I386[abi]
        } else {
            ABIS[abi]
        }
    }

    fn push(&mut self, line: String, gloss: String, cov: Vec<Cov>) {
        self.ops.push(Op { line, gloss, cov });
    }

    fn sys(&self, name: &'static str) -> Cov {
        Cov::Syscall(name, self.abi_name(self.abi))
    }

    /// A payload whose first bytes name the sequence and op (the sniffer reads them back).
    fn payload(&mut self) -> Vec<u8> {
        let mut v = format!("FZ{}:{};", self.seq, self.ops.len()).into_bytes();
        let extra = self.rng.below(24) as usize;
        v.extend(std::iter::repeat_n(b'x', extra));
        v
    }

    fn flags(&mut self) -> i32 {
        if self.cfg.allowed_only || self.rng.pct(60) {
            return 0;
        }
        *self.rng.pick(&[0x2000_0000, 4, 0x0400_0000, 0x8000, 0x800, 0x4000, 0x40, 1, 0x2000_0004])
    }

    /// A sequence of `n` chunks (each a socket and what is done with it).
    pub fn sequence(mut self, chunks: usize) -> Vec<Op> {
        for _ in 0..chunks {
            self.chunk();
        }
        self.ops
    }

    fn chunk(&mut self) {
        let s = self.rng.below(6) as i32;
        if !self.cfg.allowed_only && self.rng.pct(12) {
            let abi = self.rng.below(3) as usize;
            self.abi = abi;
            self.push(format!("abi {abi}"), format!("switch to the {} ABI", self.abi_name(abi)), vec![]);
        }
        // Run the chunk in a child now and then.
        if !self.cfg.allowed_only && self.rng.pct(8) {
            let how = if self.rng.pct(50) { "fork" } else { "vmclone" };
            self.push(format!("{how} 3"), format!("{how}: the next 3 ops in a child"), vec![]);
        }
        self.socket(s);
        if !self.cfg.allowed_only {
            for _ in 0..self.rng.below(3) {
                self.setsockopt(s);
            }
            if self.rng.pct(10) {
                let a = self.bind_addr(s);
                let cov = vec![self.sys("bind")];
                self.push(format!("bind {s} {}", hex(&a)), format!("bind(fd[{s}])"), cov);
            }
        }
        let family = self.fam[s as usize];
        let what = if self.cfg.allowed_only { self.rng.below(3) } else { self.rng.below(9) };
        match what {
            0 | 1 => {
                let d = dest(&mut self.rng, self.cfg, family);
                let cov = vec![self.sys("connect")];
                self.push(format!("connect {s} {}", hex(&d)), format!("connect(fd[{s}], {})", show(&d)), cov);
                let p = self.payload();
                if what == 0 {
                    let cov = vec![Cov::Syscall("write", self.abi_name(0))];
                    self.push(format!("write {s} {}", hex(&p)), format!("write(fd[{s}])"), cov);
                } else {
                    let f = self.flags();
                    let cov = vec![self.sys("send")];
                    self.push(
                        format!("send {s} {f} {}", hex(&p)),
                        format!("send(fd[{s}], flags {f:#x})"),
                        cov,
                    );
                }
            }
            2 | 3 => {
                let d = dest(&mut self.rng, self.cfg, family);
                let f = self.flags();
                let p = self.payload();
                let cov = vec![self.sys("sendto")];
                let gloss = format!("sendto(fd[{s}], {}, flags {f:#x})", show(&d));
                self.push(format!("sendto {s} {f} {} {}", hex(&d), hex(&p)), gloss, cov);
            }
            4 | 5 => self.sendmsg(s, family, false),
            6 => self.sendmsg(s, family, true),
            7 => {
                if self.rng.pct(50) {
                    let cov = vec![self.sys("listen"), self.sys("accept4")];
                    self.push(format!("listen {s}"), format!("listen(fd[{s}])"), cov);
                    let d = self.rng.below(8);
                    self.push(format!("accept {s} {d}"), format!("fd[{d}] = accept4(fd[{s}])"), vec![]);
                } else {
                    let d = dest(&mut self.rng, self.cfg, family);
                    let p = self.payload();
                    let cov = vec![Cov::Syscall("io_uring", self.abi_name(0))];
                    let gloss = format!("io_uring CONNECT+SEND fd[{s}] to {}", show(&d));
                    self.push(format!("uring {s} {} {}", hex(&d), hex(&p)), gloss, cov);
                }
            }
            _ => self.fd_games(s),
        }
    }

    fn bind_addr(&mut self, s: i32) -> Vec<u8> {
        if self.fam[s as usize] == 10 {
            sin6(if self.rng.pct(50) { addrs::NEAR6 } else { [0; 16] }, 0, 0)
        } else {
            sin(*self.rng.pick(&[addrs::NEAR4, [127, 0, 0, 1], [0, 0, 0, 0], [127, 0, 0, 5]]), 0)
        }
    }

    fn socket(&mut self, s: i32) {
        let (family, ty, proto) = if self.cfg.allowed_only {
            (*self.rng.pick(&[2, 10]), 1, *self.rng.pick(&[0, 6]))
        } else {
            self.socket_triple()
        };
        self.fam[s as usize] = family;
        let flags = if self.rng.pct(15) { 0o4000 } else { 0 };
        let cov = vec![Cov::Socket(family, ty, proto), self.sys("socket")];
        let gloss = format!("fd[{s}] = socket({}, {}, {proto})", fam_name(family), type_name(ty));
        self.push(format!("socket {s} {family} {} {proto}", ty | flags), gloss, cov);
    }

    fn socket_triple(&mut self) -> (i32, i32, i32) {
        loop {
            let family = match self.rng.below(20) {
                0..=8 => 2,
                9..=14 => 10,
                15 => 1,
                16 => 16,
                17 => 17,
                18 => 40,
                _ => self.rng.below(46) as i32,
            };
            let ty = match self.rng.below(10) {
                0..=3 => 2,
                4..=6 => 1,
                7 | 8 => 3,
                _ => *self.rng.pick(&[5, 4, 10, 6]),
            };
            let proto = match self.rng.below(10) {
                0..=4 => 0,
                5 => 6,
                6 => 17,
                7 => *self.rng.pick(NAMED_PROTOCOLS),
                8 if family == 17 => *self.rng.pick(&[768, 8]),
                _ => self.rng.below(256) as i32,
            };
            if family == 17 && self.cfg.skips("packet") || ty == 3 && self.cfg.skips("raw") {
                continue;
            }
            return (family, ty, proto);
        }
    }

    fn setsockopt(&mut self, s: i32) {
        if self.table.options.is_empty() {
            return;
        }
        for _ in 0..8 {
            // Half the time one of the options that move the first hop.
            let (level, opt) = if self.rng.pct(45) {
                *self.rng.pick(&[
                    (41, 57),
                    (0, 4),
                    (1, 25),
                    (1, 62),
                    (41, 9),
                    (0, 50),
                    (41, 76),
                    (41, 26),
                    (6, 30),
                    (0, 35),
                    (41, 50),
                ])
            } else {
                let (l, o, _) = self.rng.pick(&self.table.options);
                (*l, *o)
            };
            if self.cfg.skipped(level, opt) {
                continue;
            }
            let v = sockopt_value(&mut self.rng, self.cfg, level, opt);
            let name =
                self.table.name(level, opt).map(str::to_string).unwrap_or_else(|| format!("{level}/{opt}"));
            let cov = vec![Cov::Sockopt(level, opt), self.sys("setsockopt")];
            self.push(
                format!("setsockopt {s} {level} {opt} {}", hex(&v)),
                format!("setsockopt(fd[{s}], {name})"),
                cov,
            );
            return;
        }
    }

    fn sendmsg(&mut self, s: i32, family: i32, mmsg: bool) {
        let d = if self.rng.pct(10) { Vec::new() } else { dest(&mut self.rng, self.cfg, family) };
        let mut cms = Vec::new();
        let mut cov = vec![self.sys(if mmsg { "sendmmsg" } else { "sendmsg" })];
        if !self.cfg.allowed_only {
            for _ in 0..self.rng.below(3) {
                if let Some((l, t, data)) = cmsg(&mut self.rng, self.cfg) {
                    cov.push(Cov::Cmsg(l, t));
                    cms.push(format!("{l}:{t}:{}", hex(&data)));
                }
            }
        }
        let cms = if cms.is_empty() { "-".to_string() } else { cms.join(",") };
        let f = self.flags();
        let p = self.payload();
        if mmsg {
            let d2 = dest(&mut self.rng, self.cfg, family);
            let gloss = format!("sendmmsg(fd[{s}], [{}, {}], flags {f:#x})", show(&d), show(&d2));
            self.push(format!("sendmmsg {s} {f} {} {} {cms} {}", hex(&d), hex(&d2), hex(&p)), gloss, cov);
        } else {
            let gloss = format!("sendmsg(fd[{s}], {}, cmsgs {cms}, flags {f:#x})", show(&d));
            self.push(format!("sendmsg {s} {f} {} {cms} {}", hex(&d), hex(&p)), gloss, cov);
        }
    }

    /// fd-number games: dup2 and close from this thread, or a racing thread swapping numbers.
    fn fd_games(&mut self, s: i32) {
        let other = (s + 1 + self.rng.below(5) as i32) % 6;
        match self.rng.below(3) {
            0 => {
                let cov = vec![self.sys("dup2")];
                self.push(format!("dup2 {other} {s}"), format!("dup2(fd[{other}], fd[{s}])"), cov);
            }
            1 => {
                let cov = vec![self.sys("close")];
                self.push(format!("close {s}"), format!("close(fd[{s}])"), cov);
            }
            _ => {
                // A second socket to the proxy whose number a thread swaps with fd[s] while
                // fd[s] sends.
                self.socket(other);
                let d = proxy_addr(&mut self.rng, self.fam[other as usize]);
                let cov = vec![self.sys("connect")];
                self.push(
                    format!("connect {other} {}", hex(&d)),
                    format!("connect(fd[{other}], the proxy)"),
                    cov,
                );
                let n = 200 + self.rng.below(2000);
                let cov = vec![Cov::Syscall("dup2-race", self.abi_name(0))];
                let gloss = format!("a thread swaps fd[{other}] onto fd[{s}]'s number {n} times");
                self.push(format!("race {s} {other} {n}"), gloss, cov);
                for _ in 0..1 + self.rng.below(3) {
                    let d = dest(&mut self.rng, self.cfg, self.fam[s as usize]);
                    let p = self.payload();
                    let cov = vec![self.sys("sendto")];
                    self.push(
                        format!("sendto {s} 0 {} {}", hex(&d), hex(&p)),
                        format!("sendto(fd[{s}], {})", show(&d)),
                        cov,
                    );
                }
                self.push("join".into(), "join the racing thread".into(), vec![]);
            }
        }
    }
}

pub fn fam_name(f: i32) -> String {
    match f {
        1 => "AF_UNIX".into(),
        2 => "AF_INET".into(),
        10 => "AF_INET6".into(),
        16 => "AF_NETLINK".into(),
        17 => "AF_PACKET".into(),
        40 => "AF_VSOCK".into(),
        n => format!("family {n}"),
    }
}

pub fn type_name(t: i32) -> String {
    match t {
        1 => "SOCK_STREAM".into(),
        2 => "SOCK_DGRAM".into(),
        3 => "SOCK_RAW".into(),
        4 => "SOCK_RDM".into(),
        5 => "SOCK_SEQPACKET".into(),
        6 => "SOCK_DCCP".into(),
        10 => "SOCK_PACKET".into(),
        n => format!("type {n}"),
    }
}

/// A readable form of sockaddr bytes.
pub fn show(a: &[u8]) -> String {
    if a.is_empty() {
        return "no address".into();
    }
    let fam = a.first().copied().unwrap_or(0) as i32;
    let port = |a: &[u8]| a.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]])).unwrap_or(0);
    let s = match fam {
        2 if a.len() >= 8 => format!("{}.{}.{}.{}:{}", a[4], a[5], a[6], a[7], port(a)),
        10 if a.len() >= 24 => {
            let ip: [u8; 16] = a[8..24].try_into().unwrap_or([0; 16]);
            format!("[{}]:{}", std::net::Ipv6Addr::from(ip), port(a))
        }
        _ => format!("{} address", fam_name(fam)),
    };
    if (fam == 2 && a.len() != 16) || (fam == 10 && a.len() != 28) {
        format!("{s} (length {})", a.len())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config { veth_ifindex: 2, veth_name: "fzva".into(), ..Default::default() }
    }

    #[test]
    fn same_seed_same_sequence() {
        let table = OptionTable::from_headers();
        let c = cfg();
        let a = Gen::new(7, 0, &c, &table).sequence(10);
        let b = Gen::new(7, 0, &c, &table).sequence(10);
        assert_eq!(a, b);
        let other = Gen::new(8, 0, &c, &table).sequence(10);
        assert_ne!(a, other);
    }

    #[test]
    fn udp_to_port_9_is_frequent() {
        let table = OptionTable::from_headers();
        let c = cfg();
        let mut hits = 0;
        for seed in 0..50 {
            let ops = Gen::new(seed, seed, &c, &table).sequence(8);
            if ops.iter().any(|o| o.line.starts_with("sendto") && o.line.contains(" 02000009")) {
                hits += 1;
            }
        }
        assert!(hits >= 10, "{hits} of 50 sequences send to port 9");
    }

    #[test]
    fn allowed_only_targets_the_proxy() {
        let table = OptionTable::from_headers();
        let c = Config { allowed_only: true, ..cfg() };
        for seed in 0..20 {
            for op in Gen::new(seed, 0, &c, &table).sequence(6) {
                let w: Vec<&str> = op.line.split(' ').collect();
                if matches!(w[0], "connect" | "sendto" | "sendmsg") {
                    let addr = if w[0] == "connect" { w[2] } else { w[3] };
                    assert!(addr.contains("4a6a"), "not the proxy port: {}", op.line);
                }
                assert!(!op.line.starts_with("setsockopt"), "{}", op.line);
            }
        }
    }

    #[test]
    fn known_open_classes_are_left_out() {
        let table = OptionTable::from_headers();
        let c = Config { skip: ["rthdr".to_string()].into(), ..cfg() };
        for seed in 0..40 {
            for op in Gen::new(seed, 0, &c, &table).sequence(8) {
                assert!(
                    !op.line.starts_with("setsockopt 0 41 57 ") && !op.line.contains(" 41 57 "),
                    "{}",
                    op.line
                );
                assert!(!op.cov.contains(&Cov::Sockopt(41, 57)) && !op.cov.contains(&Cov::Cmsg(41, 57)));
            }
        }
    }

    #[test]
    fn defines_are_parsed() {
        let text = "#define IPV6_RTHDR\t\t57\n#define IPV6_X (3)\n#define IPV6_Y FOO\n#define IP_Z 1\n";
        assert_eq!(parse_defines(text, "IPV6_"), vec![("IPV6_RTHDR".into(), 57), ("IPV6_X".into(), 3)]);
    }

    #[test]
    fn sockaddrs_have_kernel_layout() {
        assert_eq!(hex(&sin([127, 0, 0, 2], 9)), "020000097f0000020000000000000000");
        assert_eq!(sin6(LO6, 9, 0).len(), 28);
        assert_eq!(show(&sin([127, 0, 0, 2], 9)), "127.0.0.2:9");
        assert_eq!(show(&sin6(LO6, 80, 0)), "[::1]:80");
    }

    /// Every op is one the client knows, with its token count, slots in range and even hex.
    fn check_well_formed(op: &Op) {
        let w: Vec<&str> = op.line.split(' ').collect();
        let arity = match w[0] {
            "abi" | "listen" | "close" | "fork" | "vmclone" | "sleep" => 2,
            "socket" => 5,
            "setsockopt" => 5,
            "bind" | "connect" | "accept" | "dup2" | "write" => 3,
            "send" | "uring" => 4,
            "sendto" => 5,
            "sendmsg" => 6,
            "sendmmsg" => 7,
            "race" => 4,
            "join" | "reset" => 1,
            other => panic!("unknown op {other}: {}", op.line),
        };
        assert_eq!(w.len(), arity, "{}", op.line);
        assert!(w.len() <= 8, "more tokens than the client reads: {}", op.line);
        assert!(!op.line.contains("  ") && !op.line.ends_with(' '), "{}", op.line);
        if !matches!(w[0], "abi" | "fork" | "vmclone" | "sleep" | "join" | "reset") {
            let slot: i64 = w[1].parse().unwrap_or_else(|_| panic!("slot: {}", op.line));
            assert!((0..8).contains(&slot), "{}", op.line);
        }
        if w[0] == "abi" {
            assert!(["0", "1", "2"].contains(&w[1]), "{}", op.line);
        }
        // Hex fields: the address and data tokens, and each cmsg's data.
        let hexes: Vec<&str> = match w[0] {
            "setsockopt" => vec![w[4]],
            "bind" | "connect" => vec![w[2]],
            "write" => vec![w[2]],
            "send" => vec![w[3]],
            "sendto" => vec![w[3], w[4]],
            "uring" => vec![w[2], w[3]],
            "sendmsg" => vec![w[3], w[5]],
            "sendmmsg" => vec![w[3], w[4], w[6]],
            _ => vec![],
        };
        let cms = match w[0] {
            "sendmsg" => Some(w[4]),
            "sendmmsg" => Some(w[5]),
            _ => None,
        };
        let mut all = hexes;
        if let Some(c) = cms.filter(|c| *c != "-") {
            for part in c.split(',') {
                let f: Vec<&str> = part.split(':').collect();
                assert_eq!(f.len(), 3, "cmsg {part} in {}", op.line);
                f[0].parse::<i32>().unwrap();
                f[1].parse::<i32>().unwrap();
                all.push(f[2]);
            }
        }
        for h in all {
            assert!(
                h == "-" || (h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit())),
                "hex {h} in {}",
                op.line
            );
        }
        // Numbers are decimal.
        if w[0] == "socket" {
            for n in &w[1..] {
                n.parse::<i64>().unwrap_or_else(|_| panic!("{}", op.line));
            }
        }
    }

    #[test]
    fn output_is_well_formed() {
        let table = OptionTable::from_headers();
        let c = cfg();
        let mut names = BTreeSet::new();
        for seq in 0..300 {
            let seed = Rng::sequence_seed(42, seq);
            let ops = Gen::new(seed, seq, &c, &table).i386(seq % 4 == 0).sequence(3 + (seq % 8) as usize);
            assert!(ops.len() < 512, "more ops than the client holds");
            for op in &ops {
                check_well_formed(op);
                names.insert(op.line.split(' ').next().unwrap().to_string());
                // Payloads carry their marker: this sequence and this op's index.
                if let Some(p) = op.line.rsplit(' ').next().filter(|p| p.starts_with("465a")) {
                    let bytes: Vec<u8> = (0..p.len() / 2)
                        .map(|i| u8::from_str_radix(&p[2 * i..2 * i + 2], 16).unwrap())
                        .collect();
                    let text = String::from_utf8_lossy(&bytes);
                    assert!(text.starts_with(&format!("FZ{seq}:")), "{text} in sequence {seq}");
                }
            }
            // Every pushed op opens with a socket before anything uses it.
            assert!(ops.iter().any(|o| o.line.starts_with("socket ")));
        }
        for want in
            ["socket", "setsockopt", "connect", "sendto", "sendmsg", "sendmmsg", "abi", "uring", "race"]
        {
            assert!(names.contains(want), "{want} never generated");
        }
    }

    #[test]
    fn a_sequence_replays_from_seed_and_index() {
        let table = OptionTable::from_headers();
        let c = cfg();
        let gen = |seed: u64, seq: u64, i386: bool| {
            Gen::new(Rng::sequence_seed(seed, seq), seq, &c, &table).i386(i386).sequence(6)
        };
        assert_eq!(gen(1, 17, false), gen(1, 17, false));
        assert_ne!(gen(1, 17, false), gen(1, 18, false));
        assert_ne!(gen(1, 17, false), gen(2, 17, false));
        // The i386 client gets the same ops; only the coverage names its ABI.
        let (a, b) = (gen(3, 5, false), gen(3, 5, true));
        let lines = |v: &[Op]| v.iter().map(|o| o.line.clone()).collect::<Vec<_>>();
        assert_eq!(lines(&a), lines(&b));
        assert!(b.iter().flat_map(|o| &o.cov).all(|c| !matches!(c, Cov::Syscall(_, "x86_64"))));
    }
}
