//! The fake-address pool: a stable, bounded map between names and private
//! addresses, for `Upstream::FakeIp`.
//!
//! Every name gets one index; the index is both an IPv4 address in
//! 100.64.0.0/10 (shared address space, RFC 6598) and an IPv6 address in the
//! ULA prefix fd7a:736f:636b::/48 ("sock" in ASCII). No packet to a pool address
//! ever leaves the machine on our account: socksify catches every connect to
//! the pool and asks the proxy for the *name* instead (socks5h semantics).
//!
//! The map holds at most `capacity` names; when full, the CLOCK algorithm (an
//! approximation of least-recently-used) picks the name to forget. Indices
//! are handed out round-robin over the whole 2^22 space, so an address freed
//! by eviction is not reused until about four million other names have come
//! and gone: a program that cached an evicted address longer than its TTL
//! gets "unknown address" rather than someone else's name.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// 100.64.0.0/10.
pub const V4_NET: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
pub const V4_PREFIX: u8 = 10;
/// fd7a:736f:636b::/48; the index sits in the low 32 bits.
pub const V6_NET: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x736f, 0x636b, 0, 0, 0, 0, 0);
pub const V6_PREFIX: u8 = 48;
/// Names remembered by default.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Indices run from 1 to 2^22 - 2: neither 100.64.0.0 nor 100.127.255.255.
const MAX_INDEX: u32 = (1 << (32 - V4_PREFIX)) - 2;

/// What an address is to the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAddress {
    /// Outside the pool's prefixes (or no fake addresses are handed out).
    Outside,
    /// The fake address of this name.
    Named(String),
    /// In the pool and standing for no name: never handed out, or forgotten
    /// (evicted). It may be a real network behind the proxy or the host (shared
    /// address space: CGNAT, Tailscale), so it is never connected to by address.
    Unnamed,
}

pub struct FakePool {
    capacity: usize,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    by_name: HashMap<Arc<str>, usize>,
    by_index: HashMap<u32, usize>,
    /// The CLOCK hand: the next slot considered for eviction.
    hand: usize,
    /// The last index handed out.
    last: u32,
}

struct Slot {
    name: Arc<str>,
    index: u32,
    /// Set on every use, cleared as the hand passes: a second chance.
    used: AtomicBool,
}

impl FakePool {
    pub fn new(capacity: usize) -> FakePool {
        // At least one name; fewer than half the index space, so a free index is found quickly.
        let capacity = capacity.clamp(1, (MAX_INDEX / 2) as usize);
        FakePool { capacity, inner: RwLock::new(Inner::default()) }
    }

    /// The addresses standing for `name` (already normalized: lower case, no
    /// trailing dot), allocating them on first use.
    pub fn addresses_for(&self, name: &str) -> (Ipv4Addr, Ipv6Addr) {
        if let Some(index) = self.lookup_name(name) {
            return addresses(index);
        }
        let mut inner = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&slot) = inner.by_name.get(name) {
            let index = inner.slots[slot].index;
            inner.slots[slot].used.store(true, Ordering::Relaxed);
            return addresses(index);
        }
        addresses(inner.insert(name, self.capacity))
    }

    /// The name a pool address stands for, if it is one we handed out and
    /// still remember. v4-mapped IPv6 addresses are looked up as IPv4.
    pub fn name_for(&self, ip: IpAddr) -> Option<String> {
        let index = index_of(ip)?;
        let inner = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = &inner.slots[*inner.by_index.get(&index)?];
        slot.used.store(true, Ordering::Relaxed);
        Some(slot.name.to_string())
    }

    /// What `ip` is to the pool: outside it, a name's, or nobody's.
    pub fn lookup(&self, ip: IpAddr) -> PoolAddress {
        if !in_pool(ip) {
            return PoolAddress::Outside;
        }
        self.name_for(ip).map_or(PoolAddress::Unnamed, PoolAddress::Named)
    }

    /// How many names the pool remembers now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner()).slots.len()
    }

    fn lookup_name(&self, name: &str) -> Option<u32> {
        let inner = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = &inner.slots[*inner.by_name.get(name)?];
        slot.used.store(true, Ordering::Relaxed);
        Some(slot.index)
    }
}

impl Inner {
    fn insert(&mut self, name: &str, capacity: usize) -> u32 {
        let index = self.free_index();
        let name: Arc<str> = Arc::from(name);
        let slot = Slot { name: name.clone(), index, used: AtomicBool::new(true) };
        let at = if self.slots.len() < capacity {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let victim = self.victim();
            let old = std::mem::replace(&mut self.slots[victim], slot);
            self.by_name.remove(&old.name);
            self.by_index.remove(&old.index);
            victim
        };
        self.by_name.insert(name, at);
        self.by_index.insert(index, at);
        index
    }

    /// CLOCK: the first slot from the hand whose used bit is clear, clearing
    /// bits on the way (ends within two turns).
    fn victim(&mut self) -> usize {
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            if !self.slots[at].used.swap(false, Ordering::Relaxed) {
                return at;
            }
        }
    }

    fn free_index(&mut self) -> u32 {
        loop {
            self.last = if self.last >= MAX_INDEX { 1 } else { self.last + 1 };
            if !self.by_index.contains_key(&self.last) {
                return self.last;
            }
        }
    }
}

fn addresses(index: u32) -> (Ipv4Addr, Ipv6Addr) {
    let v4 = Ipv4Addr::from(u32::from(V4_NET) | index);
    let v6 = Ipv6Addr::from(u128::from(V6_NET) | u128::from(index));
    (v4, v6)
}

/// The pool index of an address, if it lies in one of the pool prefixes.
fn index_of(ip: IpAddr) -> Option<u32> {
    let index = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let host_mask = u32::MAX >> V4_PREFIX;
            if bits & !host_mask != u32::from(V4_NET) {
                return None;
            }
            bits & host_mask
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            if bits >> 32 != u128::from(V6_NET) >> 32 {
                return None;
            }
            (bits & u128::from(u32::MAX)) as u32
        }
    };
    (1..=MAX_INDEX).contains(&index).then_some(index)
}

/// Whether `ip` lies in the pool's prefixes (whether or not it is handed out).
pub fn in_pool(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u32::from(v4) >> (32 - V4_PREFIX) == u32::from(V4_NET) >> (32 - V4_PREFIX),
        IpAddr::V6(v6) => u128::from(v6) >> (128 - V6_PREFIX) == u128::from(V6_NET) >> (128 - V6_PREFIX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_name_and_reversible() {
        let pool = FakePool::new(16);
        let (a4, a6) = pool.addresses_for("example.com");
        let (b4, b6) = pool.addresses_for("example.org");
        assert_ne!(a4, b4);
        assert_ne!(a6, b6);
        assert_eq!(pool.addresses_for("example.com"), (a4, a6));
        assert_eq!(a4, Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(a6, "fd7a:736f:636b::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(pool.name_for(a4.into()).as_deref(), Some("example.com"));
        assert_eq!(pool.name_for(a6.into()).as_deref(), Some("example.com"));
        assert_eq!(pool.name_for(IpAddr::V6(b4.to_ipv6_mapped())).as_deref(), Some("example.org"));
        assert_eq!(pool.name_for("100.64.0.99".parse().unwrap()), None);
        assert_eq!(pool.name_for("10.0.0.1".parse().unwrap()), None);
        assert_eq!(pool.name_for("fd7a:736f:636b:1::1".parse().unwrap()), None);
        assert!(in_pool(a4.into()) && in_pool(a6.into()) && in_pool("100.127.255.255".parse().unwrap()));
        assert!(!in_pool("100.128.0.1".parse().unwrap()) && !in_pool("fd7a:736e::1".parse().unwrap()));
    }

    #[test]
    fn bounded_with_second_chance_and_no_quick_reuse() {
        let pool = FakePool::new(3);
        let (a, _) = pool.addresses_for("a");
        let (b, _) = pool.addresses_for("b");
        pool.addresses_for("c");
        // All three are marked used; "d" evicts after one sweep: "a" first.
        let (d, _) = pool.addresses_for("d");
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.name_for(a.into()), None);
        assert_ne!(d, a, "an evicted address is not handed out again at once");
        // "b" was cleared by the sweep, "c" too; using "b" again protects it.
        assert_eq!(pool.name_for(b.into()).as_deref(), Some("b"));
        pool.addresses_for("e");
        assert_eq!(pool.name_for(b.into()).as_deref(), Some("b"));
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn a_pool_address_is_a_names_or_nobodys() {
        let pool = FakePool::new(1);
        let (a4, a6) = pool.addresses_for("a");
        assert_eq!(pool.lookup(a4.into()), PoolAddress::Named("a".into()));
        assert_eq!(pool.lookup(a6.into()), PoolAddress::Named("a".into()));
        assert_eq!(pool.lookup(IpAddr::V6(a4.to_ipv6_mapped())), PoolAddress::Named("a".into()));
        for never in ["100.64.3.3", "100.64.0.0", "100.127.255.255", "fd7a:736f:636b::9"] {
            assert_eq!(pool.lookup(never.parse().unwrap()), PoolAddress::Unnamed, "{never}");
        }
        for outside in ["100.128.0.1", "100.63.255.255", "127.0.0.1", "fd7a:736f:636c::1"] {
            assert_eq!(pool.lookup(outside.parse().unwrap()), PoolAddress::Outside, "{outside}");
        }
        pool.addresses_for("b");
        assert_eq!(pool.lookup(a4.into()), PoolAddress::Unnamed, "evicted");
    }

    #[test]
    fn index_space_wraps_around_live_entries() {
        let pool = FakePool::new(2);
        pool.inner.write().unwrap().last = MAX_INDEX - 1;
        let (x, _) = pool.addresses_for("x");
        let (y, _) = pool.addresses_for("y");
        assert_eq!(x, Ipv4Addr::new(100, 127, 255, 254));
        assert_eq!(y, Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(pool.name_for(x.into()).as_deref(), Some("x"));
    }
}
