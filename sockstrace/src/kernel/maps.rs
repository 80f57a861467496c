//! Typed access to the object's maps: the backstop policy in, socket facts and drop counts out.

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, MapData, PerCpuArray},
    Ebpf,
};
use sockstrace_common::{
    socket_slot, Config, Rule, SockFacts, CONFIG_MAP, DROPPED_MAP, RULES_MAP, SOCKETS_MAP, SOCKETS_WAYS,
};

use super::backstop::Backstop;

/// The socket facts map, kept for lookups by cookie: an array the programs use as a
/// set-associative cache (see `sockstrace_common::socket_slot`), of as many sets as its size
/// holds (the loader may make it smaller than the object says). Clones share the map.
#[derive(Clone)]
pub struct SocketsMap {
    array: std::sync::Arc<Array<MapData, SockFacts>>,
    set_mask: u32,
}

/// Writes the rules, then the config that puts them in force.
pub fn write_backstop(ebpf: &mut Ebpf, backstop: &Backstop) -> Result<()> {
    let mut rules: Array<_, Rule> = Array::try_from(map_mut(ebpf, RULES_MAP)?)
        .with_context(|| format!("map {RULES_MAP} has an unexpected type"))?;
    for (index, rule) in (0u32..).zip(&backstop.rules) {
        rules.set(index, *rule, 0).with_context(|| format!("writing {RULES_MAP}[{index}]"))?;
    }
    let mut config: Array<_, Config> = Array::try_from(map_mut(ebpf, CONFIG_MAP)?)
        .with_context(|| format!("map {CONFIG_MAP} has an unexpected type"))?;
    config.set(0, backstop.config, 0).with_context(|| format!("writing {CONFIG_MAP}[0]"))
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name).with_context(|| format!("the eBPF object has no map {name}"))
}

impl SocketsMap {
    /// How many sets the map holds.
    #[cfg(test)]
    pub fn sets(&self) -> u32 {
        self.set_mask + 1
    }
}

/// Takes the socket facts map out of the object.
pub fn take_sockets(ebpf: &mut Ebpf) -> Result<SocketsMap> {
    let map =
        ebpf.take_map(SOCKETS_MAP).with_context(|| format!("the eBPF object has no map {SOCKETS_MAP}"))?;
    let array: Array<_, SockFacts> =
        Array::try_from(map).with_context(|| format!("map {SOCKETS_MAP} has an unexpected type"))?;
    let set_mask = (array.len() / SOCKETS_WAYS).saturating_sub(1);
    Ok(SocketsMap { array: std::sync::Arc::new(array), set_mask })
}

/// Looks a socket up by cookie; `None` when the kernel never saw it (or gave its slot to a
/// newer socket).
pub fn lookup_facts(sockets: &SocketsMap, cookie: u64) -> Option<SockFacts> {
    find_in_set(cookie, sockets.set_mask, |slot| sockets.array.get(&slot, 0).ok())
}

/// The facts among the ways of `cookie`'s set (of `set_mask + 1`, read by `read_slot`) that
/// are the socket's.
fn find_in_set(
    cookie: u64,
    set_mask: u32,
    read_slot: impl Fn(u32) -> Option<SockFacts>,
) -> Option<SockFacts> {
    if cookie == 0 {
        return None;
    }
    (0..SOCKETS_WAYS)
        .find_map(|way| read_slot(socket_slot(cookie, way, set_mask)).filter(|facts| facts.cookie == cookie))
}

/// Takes the drop counter out of the object.
pub fn take_dropped(ebpf: &mut Ebpf) -> Result<PerCpuArray<MapData, u64>> {
    let map =
        ebpf.take_map(DROPPED_MAP).with_context(|| format!("the eBPF object has no map {DROPPED_MAP}"))?;
    PerCpuArray::try_from(map).with_context(|| format!("map {DROPPED_MAP} has an unexpected type"))
}

/// The sum of every CPU's drop count.
pub fn read_dropped(dropped: &PerCpuArray<MapData, u64>) -> Result<u64> {
    let values = dropped.get(&0, 0).with_context(|| format!("reading {DROPPED_MAP}"))?;
    Ok(values.iter().fold(0u64, |sum, &n| sum.saturating_add(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_found_in_either_way_of_its_set_only_under_its_own_cookie() {
        let with_cookie = |cookie| SockFacts { cookie, connects: 7, ..SockFacts::zeroed() };
        let mask = sockstrace_common::run_socket_sets(2) - 1;
        let (a, b) = (5u64, 5 + u64::from(mask + 1));
        let slots = |slot: u32| match slot {
            s if s == socket_slot(a, 0, mask) => Some(with_cookie(b)),
            s if s == socket_slot(a, 1, mask) => Some(with_cookie(a)),
            _ => Some(SockFacts::zeroed()),
        };
        assert_eq!(find_in_set(a, mask, slots).map(|f| f.cookie), Some(a));
        assert_eq!(find_in_set(b, mask, slots).map(|f| f.cookie), Some(b));
        assert_eq!(find_in_set(6, mask, slots), None, "an empty slot is nobody's");
        assert_eq!(find_in_set(0, mask, |_| Some(SockFacts::zeroed())), None, "cookie 0 is no socket");
        assert_eq!(find_in_set(a, mask, |_| None), None);
    }
}
