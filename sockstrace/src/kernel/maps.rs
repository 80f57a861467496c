//! Typed access to the object's maps: the backstop policy in, socket facts and drop counts out.

use anyhow::{Context as _, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    Ebpf,
};
use sockstrace_common::{Config, Rule, SockFacts, CONFIG_MAP, DROPPED_MAP, RULES_MAP, SOCKETS_MAP};

use super::backstop::Backstop;

/// The socket facts map, kept for lookups by cookie.
pub type SocketsMap = HashMap<MapData, u64, SockFacts>;

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

/// Takes the socket facts map out of the object.
pub fn take_sockets(ebpf: &mut Ebpf) -> Result<SocketsMap> {
    let map =
        ebpf.take_map(SOCKETS_MAP).with_context(|| format!("the eBPF object has no map {SOCKETS_MAP}"))?;
    HashMap::try_from(map).with_context(|| format!("map {SOCKETS_MAP} has an unexpected type"))
}

/// Looks a socket up by cookie; `None` when the kernel never saw it (or evicted it).
pub fn lookup_facts(sockets: &SocketsMap, cookie: u64) -> Option<SockFacts> {
    sockets.get(&cookie, 0).ok()
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
