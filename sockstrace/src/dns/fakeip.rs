//! `Upstream::FakeIp`: answers made up from the fake-address pool, with no
//! traffic at all; the proxy resolves the name when the program connects.
//!
//! Query types other than A, AAAA, ANY and PTR get NOERROR with no records
//! (NODATA), not NOTIMP: stub resolvers (glibc, musl) and browsers asking for
//! HTTPS/SVCB, MX or TXT treat NODATA as "no such record" and go on with
//! A/AAAA, whereas NOTIMP reads as a broken server, makes glibc try the next
//! nameserver and can fail the whole lookup. NODATA also agrees with our A
//! answer: the name exists.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::answer::{self, Outcome};
use super::pool::{self, FakePool};
use super::query::Request;

pub fn answer(pool: &FakePool, request: &Request) -> Outcome {
    let question = request.question();
    let owner = question.name();
    let Some(name) = request.name() else {
        return Outcome::Code(ResponseCode::Refused);
    };
    match question.query_type() {
        RecordType::PTR => ptr(pool, request),
        // The root, or a name made of nothing: no address to make up.
        _ if name.is_empty() => Outcome::Records(Vec::new()),
        qtype @ (RecordType::A | RecordType::AAAA | RecordType::ANY) => {
            let (v4, v6) = pool.addresses_for(&name);
            let records = [v4.into(), v6.into()]
                .into_iter()
                .filter(|&ip| answer::fits(qtype, ip))
                .map(|ip| answer::address_record(owner, ip))
                .collect();
            Outcome::Records(records)
        }
        _ => Outcome::Records(Vec::new()),
    }
}

/// PTR for a pool address we handed out: its name. Any other address:
/// NXDOMAIN (we know nothing of it and ask nobody).
fn ptr(pool: &FakePool, request: &Request) -> Outcome {
    let owner = request.question().name();
    let record = answer::reverse_address(owner)
        .filter(|&ip| pool::in_pool(ip))
        .and_then(|ip| pool.name_for(ip))
        .and_then(|name| answer::ptr_record(owner, &name));
    match record {
        Some(record) => Outcome::Records(vec![record]),
        None => Outcome::Code(ResponseCode::NXDomain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::tests::{odd_name, query_bytes, query_for};
    use crate::dns::query::{read, Read};

    fn ask(pool: &FakePool, name: &str, qtype: RecordType) -> String {
        let Read::Query(request) = read(&query_bytes(1, name, qtype, None)) else { panic!() };
        answer(pool, &request).summary()
    }

    #[test]
    fn a_aaaa_ptr_consistent() {
        let pool = FakePool::new(100);
        let a = ask(&pool, "Example.COM.", RecordType::A);
        let aaaa = ask(&pool, "example.com.", RecordType::AAAA);
        assert_eq!(a, "100.64.0.1");
        assert_eq!(aaaa, "fd7a:736f:636b::1");
        assert_eq!(ask(&pool, "example.com", RecordType::ANY), "100.64.0.1, fd7a:736f:636b::1");
        assert_eq!(ask(&pool, "other.example.", RecordType::A), "100.64.0.2");
        assert_eq!(ask(&pool, "1.0.64.100.in-addr.arpa.", RecordType::PTR), "example.com");
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.6.3.6.f.6.3.7.a.7.d.f.ip6.arpa.";
        assert_eq!(ask(&pool, v6, RecordType::PTR), "other.example");
        assert_eq!(ask(&pool, "9.9.64.100.in-addr.arpa.", RecordType::PTR), "NXDOMAIN");
        assert_eq!(ask(&pool, "1.1.1.1.in-addr.arpa.", RecordType::PTR), "NXDOMAIN");
        assert_eq!(pool.name_for("100.64.0.1".parse().unwrap()).as_deref(), Some("example.com"));
    }

    #[test]
    fn other_types_get_nodata_and_odd_names_refused() {
        let pool = FakePool::new(100);
        for qtype in
            [RecordType::MX, RecordType::TXT, RecordType::SRV, RecordType::HTTPS, RecordType::Unknown(999)]
        {
            assert_eq!(ask(&pool, "example.com.", qtype), "NODATA");
        }
        assert_eq!(ask(&pool, ".", RecordType::A), "NODATA");
        let Read::Query(odd) = read(&query_for(1, odd_name(), RecordType::A, None)) else { panic!() };
        assert_eq!(answer(&pool, &odd).summary(), "REFUSED");
        assert_eq!(pool.len(), 0, "nothing allocated for them");
    }
}
