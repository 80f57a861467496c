//! The coverage summary, pure: what a campaign tried against what the grammar and the kernel
//! headers know (setsockopt (level, optname) pairs, control-message kinds, socket families,
//! types and protocols), as counts and percentages.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::grammar::{self, Cov, OptionTable};

/// Tried out of known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub tried: usize,
    pub known: usize,
}

impl Ratio {
    pub fn pct(self) -> f64 {
        if self.known == 0 {
            0.0
        } else {
            100.0 * self.tried as f64 / self.known as f64
        }
    }
    fn json(self) -> Value {
        json!({"tried": self.tried, "known": self.known, "pct": (self.pct() * 10.0).round() / 10.0})
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:.0}%)", self.tried, self.known, self.pct())
    }
}

/// The protocols the grammar can draw: every number below 256 and the named ones above.
fn known_protocols() -> BTreeSet<i32> {
    (0..256).chain(grammar::NAMED_PROTOCOLS.iter().copied()).chain([768, 8]).collect()
}

/// The coverage of one campaign.
#[derive(Debug)]
pub struct Summary {
    /// (level, optname) pairs tried, out of the option table's (kernel headers) pairs.
    pub sockopts: Ratio,
    /// Per level: tried out of known.
    pub sockopts_by_level: BTreeMap<i32, Ratio>,
    /// Control-message (level, type) kinds, out of the grammar's.
    pub cmsgs: Ratio,
    pub families: Ratio,
    pub types: Ratio,
    pub protocols: Ratio,
    /// AF_INET/AF_INET6 x types x {0, TCP, UDP, the named protocols}: the interesting corner.
    pub inet_triples: Ratio,
    /// Every (family, type, protocol) tried (the whole space is families x types x protocols).
    pub triples: Ratio,
    /// (syscall, ABI) pairs tried, by ABI.
    pub syscalls: BTreeMap<String, BTreeSet<String>>,
    pub sockopt_names: Vec<String>,
    pub sockopt_untried: Vec<String>,
    pub cmsg_names: Vec<String>,
    pub socket_names: Vec<String>,
}

pub fn summarize(cov: &BTreeSet<Cov>, table: &OptionTable) -> Summary {
    let known_opts: BTreeSet<(i32, i32)> = table.options.iter().map(|(l, o, _)| (*l, *o)).collect();
    let mut opts = BTreeSet::new();
    let mut cmsgs = BTreeSet::new();
    let mut triples = BTreeSet::new();
    let mut syscalls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in cov {
        match c {
            Cov::Socket(f, t, p) => {
                triples.insert((*f, *t, *p));
            }
            Cov::Sockopt(l, o) => {
                opts.insert((*l, *o));
            }
            Cov::Cmsg(l, t) => {
                cmsgs.insert((*l, *t));
            }
            Cov::Syscall(s, abi) => {
                syscalls.entry(abi.to_string()).or_default().insert(s.to_string());
            }
        }
    }
    let protos = known_protocols();
    let inet_protos: BTreeSet<i32> = [0, 6, 17].iter().chain(grammar::NAMED_PROTOCOLS).copied().collect();
    let fams: BTreeSet<i32> = triples.iter().map(|t| t.0).filter(|f| grammar::FAMILIES.contains(f)).collect();
    let types: BTreeSet<i32> = triples.iter().map(|t| t.1).filter(|t| grammar::TYPES.contains(t)).collect();
    let ps: BTreeSet<i32> = triples.iter().map(|t| t.2).filter(|p| protos.contains(p)).collect();
    let inet = triples
        .iter()
        .filter(|(f, t, p)| [2, 10].contains(f) && grammar::TYPES.contains(t) && inet_protos.contains(p))
        .count();
    let nfam = grammar::FAMILIES.len();
    let mut by_level = BTreeMap::new();
    for (l, o) in &known_opts {
        let r: &mut Ratio = by_level.entry(*l).or_insert(Ratio { tried: 0, known: 0 });
        r.known += 1;
        if opts.contains(&(*l, *o)) {
            r.tried += 1;
        }
    }
    let name = |l: i32, o: i32| table.name(l, o).map(str::to_string).unwrap_or(format!("{l}/{o}"));
    Summary {
        sockopts: Ratio { tried: opts.intersection(&known_opts).count(), known: known_opts.len() },
        sockopts_by_level: by_level,
        cmsgs: Ratio {
            tried: cmsgs.iter().filter(|k| grammar::CMSG_KINDS.contains(k)).count(),
            known: grammar::CMSG_KINDS.len(),
        },
        families: Ratio { tried: fams.len(), known: nfam },
        types: Ratio { tried: types.len(), known: grammar::TYPES.len() },
        protocols: Ratio { tried: ps.len(), known: protos.len() },
        inet_triples: Ratio { tried: inet, known: 2 * grammar::TYPES.len() * inet_protos.len() },
        triples: Ratio { tried: triples.len(), known: nfam * grammar::TYPES.len() * protos.len() },
        syscalls,
        sockopt_names: opts.iter().map(|(l, o)| name(*l, *o)).collect(),
        sockopt_untried: known_opts.difference(&opts).map(|(l, o)| name(*l, *o)).collect(),
        cmsg_names: cmsgs.iter().map(|(l, t)| format!("{l}/{t}")).collect(),
        socket_names: triples
            .iter()
            .map(|(f, t, p)| format!("{}/{}/{p}", grammar::fam_name(*f), grammar::type_name(*t)))
            .collect(),
    }
}

fn level_name(l: i32) -> String {
    match l {
        0 => "IPPROTO_IP".into(),
        1 => "SOL_SOCKET".into(),
        6 => "IPPROTO_TCP".into(),
        17 => "IPPROTO_UDP".into(),
        41 => "IPPROTO_IPV6".into(),
        n => format!("level {n}"),
    }
}

impl Summary {
    /// The lines printed after a campaign.
    pub fn lines(&self) -> Vec<String> {
        let levels: Vec<String> =
            self.sockopts_by_level.iter().map(|(l, r)| format!("{} {r}", level_name(*l))).collect();
        let pairs: usize = self.syscalls.values().map(BTreeSet::len).sum();
        vec![
            format!("setsockopt (level, optname) pairs {} [{}]", self.sockopts, levels.join(", ")),
            format!("cmsg kinds {}", self.cmsgs),
            format!(
                "sockets: families {}, types {}, protocols {}; inet triples {}; all triples {}",
                self.families, self.types, self.protocols, self.inet_triples, self.triples
            ),
            format!(
                "(syscall, ABI) pairs {pairs}: {}",
                self.syscalls.iter().map(|(a, s)| format!("{a} {}", s.len())).collect::<Vec<_>>().join(", ")
            ),
        ]
    }

    pub fn json(&self) -> Value {
        json!({
            "sockopt_pairs": self.sockopts.json(),
            "sockopt_pairs_by_level": self.sockopts_by_level.iter()
                .map(|(l, r)| (level_name(*l), r.json())).collect::<serde_json::Map<_, _>>(),
            "cmsg_kinds": self.cmsgs.json(),
            "families": self.families.json(),
            "types": self.types.json(),
            "protocols": self.protocols.json(),
            "inet_triples": self.inet_triples.json(),
            "triples": self.triples.json(),
            "sockopts": self.sockopt_names,
            "sockopts_untried": self.sockopt_untried,
            "cmsgs": self.cmsg_names,
            "sockets": self.socket_names,
            "syscalls_by_abi": self.syscalls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_against_the_known_sets() {
        let table = OptionTable {
            options: vec![
                (1, 25, "SO_BINDTODEVICE".into()),
                (41, 57, "IPV6_RTHDR".into()),
                (0, 4, "IP_OPTIONS".into()),
            ],
        };
        let cov: BTreeSet<Cov> = [
            Cov::Sockopt(41, 57),
            Cov::Sockopt(999, 1), // not in the table: not counted as tried
            Cov::Cmsg(41, 57),
            Cov::Socket(2, 2, 0),
            Cov::Socket(10, 2, 17),
            Cov::Socket(17, 3, 768),
            Cov::Syscall("sendto", "i386"),
        ]
        .into();
        let s = summarize(&cov, &table);
        assert_eq!(s.sockopts, Ratio { tried: 1, known: 3 });
        assert_eq!(s.sockopts_by_level[&41], Ratio { tried: 1, known: 1 });
        assert_eq!(s.sockopts_by_level[&1], Ratio { tried: 0, known: 1 });
        assert_eq!(s.cmsgs.tried, 1);
        assert_eq!(s.families, Ratio { tried: 3, known: 46 });
        assert_eq!(s.types.tried, 2);
        assert_eq!(s.inet_triples.tried, 2);
        assert_eq!(s.triples.tried, 3);
        assert_eq!(s.sockopt_untried, vec!["IP_OPTIONS".to_string(), "SO_BINDTODEVICE".to_string()]);
        assert!(s.lines()[0].contains("1/3 (33%)"), "{}", s.lines()[0]);
        assert_eq!(s.json()["cmsg_kinds"]["known"], grammar::CMSG_KINDS.len());
    }
}
