//! Counters and the list of lookups, for the report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use hickory_proto::op::ResponseCode;
use serde::Serialize;

/// Distinct (name, type, answer) lookups kept; beyond, only counted.
const MAX_LOOKUPS: usize = 10_000;

/// What the resolver did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResolverStats {
    /// Messages received (UDP datagrams and TCP messages).
    pub queries: u64,
    /// NOERROR replies (with or without records), by query type: "A", "AAAA", "PTR", "HTTPS", ...
    pub answered: BTreeMap<String, u64>,
    /// NXDOMAIN replies.
    pub nxdomain: u64,
    /// REFUSED replies: query types, classes or names we do not pass on.
    pub refused: u64,
    /// FORMERR, NOTIMP and BADVERS replies: messages we could not take.
    pub malformed: u64,
    /// SERVFAIL replies: the upstream (proxy, resolver) failed or timed out.
    pub failures: u64,
    /// UDP replies cut to the header and question, TC set.
    pub truncated: u64,
    /// Messages not answered: shorter than a header, responses, or over the
    /// limit of queries in flight.
    pub dropped: u64,
    /// Distinct lookups, in order of first appearance.
    pub lookups: Vec<Lookup>,
    /// Lookups not listed because the list was full.
    pub lookups_omitted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    /// Lower case, no trailing dot.
    pub name: String,
    pub qtype: String,
    /// The addresses or names answered, "NODATA", or the response code
    /// ("SERVFAIL: why" for failures).
    pub answer: String,
    /// How many times this exact lookup was answered so.
    pub count: u64,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stats: ResolverStats,
    index: HashMap<(String, String, String), usize>,
}

impl Stats {
    pub fn snapshot(&self) -> ResolverStats {
        self.lock().stats.clone()
    }

    pub fn received(&self) {
        self.lock().stats.queries += 1;
    }

    pub fn dropped(&self) {
        self.lock().stats.dropped += 1;
    }

    /// A reply sent with `rcode` (to a query of type `qtype`, when known).
    pub fn replied(&self, qtype: Option<&str>, rcode: ResponseCode, truncated: bool) {
        let mut inner = self.lock();
        let stats = &mut inner.stats;
        stats.truncated += u64::from(truncated);
        match rcode {
            ResponseCode::NoError => *stats.answered.entry(qtype.unwrap_or("?").to_owned()).or_default() += 1,
            ResponseCode::NXDomain => stats.nxdomain += 1,
            ResponseCode::Refused => stats.refused += 1,
            ResponseCode::ServFail => stats.failures += 1,
            _ => stats.malformed += 1,
        }
    }

    /// One lookup and its answer, for the list.
    pub fn lookup(&self, name: String, qtype: String, answer: String) {
        let mut inner = self.lock();
        let key = (name, qtype, answer);
        if let Some(&at) = inner.index.get(&key) {
            inner.stats.lookups[at].count += 1;
            return;
        }
        if inner.stats.lookups.len() >= MAX_LOOKUPS {
            inner.stats.lookups_omitted += 1;
            return;
        }
        let at = inner.stats.lookups.len();
        let (name, qtype, answer) = key.clone();
        inner.stats.lookups.push(Lookup { name, qtype, answer, count: 1 });
        inner.index.insert(key, at);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_dedups() {
        let stats = Stats::default();
        stats.received();
        stats.replied(Some("A"), ResponseCode::NoError, false);
        stats.replied(Some("A"), ResponseCode::NoError, true);
        stats.replied(None, ResponseCode::FormErr, false);
        stats.replied(Some("A"), ResponseCode::ServFail, false);
        stats.lookup("a".into(), "A".into(), "100.64.0.1".into());
        stats.lookup("a".into(), "A".into(), "100.64.0.1".into());
        stats.lookup("a".into(), "AAAA".into(), "fd7a:736f:636b::1".into());
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.queries, 1);
        assert_eq!(snapshot.answered.get("A"), Some(&2));
        assert_eq!((snapshot.malformed, snapshot.failures, snapshot.truncated), (1, 1, 1));
        assert_eq!(snapshot.lookups.len(), 2);
        assert_eq!(snapshot.lookups[0].count, 2);
    }
}
