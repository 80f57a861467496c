//! One query from bytes to reply: read, answer (here, or by the upstream),
//! encode, count. Everything but the upstream is synchronous (`start`), so
//! FakeIp queries are answered without a task of their own.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use hickory_proto::op::{Message, MessageType, ResponseCode};

use super::answer::{self, Outcome};
use super::forward::Forwarder;
use super::pool::{FakePool, PoolAddress};
use super::query::{self, Read, Request};
use super::reply::{self, Transport};
use super::stats::{ResolverStats, Stats};
use super::{fakeip, special, tor, Upstream};

/// How long the upstream may take before the client gets SERVFAIL (a stub
/// resolver retries after 5 s, so a late answer is still of use).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Handler {
    backend: Backend,
    stats: Stats,
}

enum Backend {
    FakeIp(FakePool),
    Tor(std::net::SocketAddr),
    Tcp(Forwarder),
}

/// After the synchronous part of a query.
#[derive(Debug)]
pub enum Step {
    /// The reply, or nothing to send.
    Done(Option<Vec<u8>>),
    /// The upstream must be asked: `Handler::resolve`.
    Upstream(Request),
}

impl Handler {
    pub fn new(upstream: Upstream, pool_capacity: usize) -> Handler {
        let backend = match upstream {
            Upstream::FakeIp => Backend::FakeIp(FakePool::new(pool_capacity)),
            Upstream::TorResolve { proxy } => Backend::Tor(proxy),
            Upstream::TcpViaSocks { proxy, resolver } => Backend::Tcp(Forwarder::new(proxy, resolver)),
        };
        Handler { backend, stats: Stats::default() }
    }

    #[cfg(test)]
    pub fn name_for(&self, ip: IpAddr) -> Option<String> {
        match &self.backend {
            Backend::FakeIp(pool) => pool.name_for(ip),
            _ => None,
        }
    }

    /// What `ip` is to the fake-address pool (`Outside` when there is none).
    pub fn pool_address(&self, ip: IpAddr) -> PoolAddress {
        match &self.backend {
            Backend::FakeIp(pool) => pool.lookup(ip),
            _ => PoolAddress::Outside,
        }
    }

    /// Whether `ip` lies in the fake-address pool, when there is one.
    pub fn in_fake_pool(&self, ip: IpAddr) -> bool {
        matches!(self.backend, Backend::FakeIp(_)) && super::pool::in_pool(ip)
    }

    pub fn stats(&self) -> ResolverStats {
        self.stats.snapshot()
    }

    /// A message that could not even be taken in (too many in flight).
    pub fn overloaded(&self) {
        self.stats.received();
        self.stats.dropped();
    }

    /// Reads a message and answers all that needs no I/O.
    pub fn start(&self, bytes: &[u8], transport: Transport) -> Step {
        self.stats.received();
        let request = match query::read(bytes) {
            Read::Ignore => {
                self.stats.dropped();
                return Step::Done(None);
            }
            Read::Reject { reply, rcode } => {
                self.stats.replied(None, rcode, false);
                return Step::Done(Some(reply));
            }
            Read::Query(request) => request,
        };
        if let Some(outcome) = special::answer(&request) {
            return Step::Done(self.finish(&request, outcome, transport, None));
        }
        match &self.backend {
            Backend::FakeIp(pool) => {
                let outcome = fakeip::answer(pool, &request);
                Step::Done(self.finish(&request, outcome, transport, None))
            }
            Backend::Tor(_) | Backend::Tcp(_) => Step::Upstream(request),
        }
    }

    /// Asks the upstream and makes the reply; SERVFAIL when it fails.
    pub async fn resolve(&self, request: Request, transport: Transport) -> Option<Vec<u8>> {
        let result = match tokio::time::timeout(UPSTREAM_TIMEOUT, self.ask(&request)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("no answer within {} s", UPSTREAM_TIMEOUT.as_secs())),
        };
        match result {
            Ok(outcome) => self.finish(&request, outcome, transport, None),
            Err(e) => self.finish(
                &request,
                Outcome::Code(ResponseCode::ServFail),
                transport,
                Some(format!("{e:#}")),
            ),
        }
    }

    async fn ask(&self, request: &Request) -> anyhow::Result<Outcome> {
        match &self.backend {
            Backend::FakeIp(pool) => Ok(fakeip::answer(pool, request)),
            Backend::Tor(proxy) => tor::answer(*proxy, request).await,
            Backend::Tcp(forwarder) => {
                let raw = forwarder.exchange(&request.raw).await?;
                let message = Message::from_vec(&raw).context("decoding the resolver's reply")?;
                if message.message_type != MessageType::Response || message.queries != request.message.queries
                {
                    bail!("the resolver's reply does not answer the question");
                }
                Ok(Outcome::Upstream { raw, message })
            }
        }
    }

    /// Encodes the reply, counts it and lists the lookup.
    fn finish(
        &self,
        request: &Request,
        outcome: Outcome,
        transport: Transport,
        failure: Option<String>,
    ) -> Option<Vec<u8>> {
        let question = request.question();
        let qtype = query::type_name(question.query_type());
        let name = answer::display_name(question.name());
        let mut summary = outcome.summary();
        if let Some(why) = failure {
            summary = format!("{summary}: {}", why.chars().take(300).collect::<String>());
        }
        let mut rcode = outcome.rcode();
        let limit = reply::limit(transport, request.edns());
        let (bytes, truncated) = match answer::encode(request, outcome, limit) {
            Ok(encoded) => encoded,
            Err(e) => {
                rcode = ResponseCode::ServFail;
                summary = format!("SERVFAIL: {e:#}");
                answer::encode(request, Outcome::Code(rcode), limit).ok()?
            }
        };
        self.stats.replied(Some(&qtype), rcode, truncated);
        self.stats.lookup(name, qtype, summary);
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::tests::query_bytes;
    use hickory_proto::op::{Edns, OpCode, Query};
    use hickory_proto::rr::{DNSClass, Name, RecordType};
    use proptest::prelude::*;

    fn fake() -> Handler {
        Handler::new(Upstream::FakeIp, 1024)
    }

    fn done(step: Step) -> Option<Vec<u8>> {
        match step {
            Step::Done(reply) => reply,
            Step::Upstream(_) => panic!("FakeIp asked the upstream"),
        }
    }

    #[test]
    fn answers_and_counts() {
        let handler = fake();
        let reply =
            done(handler.start(&query_bytes(0x1234, "example.com.", RecordType::A, None), Transport::Udp));
        let reply = Message::from_vec(&reply.unwrap()).unwrap();
        assert_eq!(reply.id, 0x1234);
        assert_eq!(reply.message_type, MessageType::Response);
        assert!(reply.recursion_desired && reply.recursion_available);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].ttl, answer::TTL);
        done(handler.start(b"garbage but twelve+ bytes", Transport::Udp));
        done(handler.start(b"short", Transport::Udp));
        let stats = handler.stats();
        assert_eq!(stats.queries, 3);
        assert_eq!(stats.answered.get("A"), Some(&1));
        assert_eq!((stats.malformed, stats.dropped), (1, 1));
        assert_eq!(stats.lookups[0].name, "example.com");
        assert_eq!(stats.lookups[0].answer, "100.64.0.1");
        assert_eq!(handler.name_for("100.64.0.1".parse().unwrap()).as_deref(), Some("example.com"));
    }

    #[test]
    fn other_backends_go_upstream_but_special_names_do_not() {
        let handler = Handler::new(Upstream::TorResolve { proxy: "127.0.0.1:9".parse().unwrap() }, 16);
        let query = query_bytes(1, "example.com.", RecordType::A, None);
        assert!(matches!(handler.start(&query, Transport::Udp), Step::Upstream(_)));
        let local = query_bytes(1, "localhost.", RecordType::A, None);
        assert!(matches!(handler.start(&local, Transport::Udp), Step::Done(Some(_))));
        assert_eq!(handler.name_for("100.64.0.1".parse().unwrap()), None);
    }

    /// Checks a reply's invariants; returns it decoded.
    fn check_reply(query: &[u8], reply: &[u8], transport: Transport) -> Message {
        assert!(reply.len() >= 12);
        assert_eq!(reply[..2], query[..2], "same ID");
        assert_eq!(reply[2] & 0x80, 0x80, "QR set");
        if transport == Transport::Udp {
            assert!(reply.len() <= usize::from(reply::EDNS_PAYLOAD));
        }
        Message::from_vec(reply).expect("our replies decode")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Random bytes: never a panic; a reply only to a query header, and a
        /// well-formed one.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), tcp in any::<bool>()) {
            let transport = if tcp { Transport::Tcp } else { Transport::Udp };
            let handler = fake();
            if let Some(reply) = done(handler.start(&bytes, transport)) {
                prop_assert!(bytes.len() >= 12 && bytes[2] & 0x80 == 0);
                check_reply(&bytes, &reply, transport);
            }
        }

        /// Valid queries with random header bits, names, types, classes and
        /// EDNS, then randomly corrupted.
        #[test]
        fn structured_queries_never_panic(
            id in any::<u16>(),
            opcode in 0u8..16,
            labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 0..5),
            qtype in any::<u16>(),
            qclass in prop_oneof![Just(1u16), any::<u16>()],
            edns in proptest::option::of((any::<u16>(), 0u8..3, any::<bool>())),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let Ok(name) = Name::from_labels(labels) else { return Ok(()) };
            let mut message = Message::new(id, MessageType::Query, OpCode::from_u8(opcode));
            let mut question = Query::query(name, RecordType::from(qtype));
            question.set_query_class(DNSClass::from(qclass));
            message.add_query(question);
            if let Some((size, version, dnssec_ok)) = edns {
                let mut opt = Edns::new();
                opt.set_max_payload(size).set_version(version).set_dnssec_ok(dnssec_ok);
                message.set_edns(opt);
            }
            let Ok(mut bytes) = message.to_vec() else { return Ok(()) };
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let handler = fake();
            for transport in [Transport::Udp, Transport::Tcp] {
                if let Some(reply) = done(handler.start(&bytes, transport)) {
                    let decoded = check_reply(&bytes, &reply, transport);
                    if bytes[2] & 0x80 != 0 {
                        prop_assert!(false, "replied to a response");
                    }
                    if decoded.response_code == ResponseCode::NoError {
                        prop_assert_eq!(decoded.queries.len(), 1);
                    }
                }
            }
        }
    }
}
