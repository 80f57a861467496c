//! Special-use names (RFC 6761) answered here in every mode, never passed
//! to the proxy: `localhost` (a proxy would resolve it to *its* loopback) and
//! `invalid`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::answer::{self, Outcome};
use super::query::Request;

/// The answer for a special-use name, or `None` for any other name.
pub fn answer(request: &Request) -> Option<Outcome> {
    let question = request.question();
    let name = request.name()?;
    let qtype = question.query_type();
    let owner = question.name();
    if is_under(&name, "localhost") {
        let records = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
            .into_iter()
            .filter(|&ip| answer::fits(qtype, ip))
            .map(|ip| answer::address_record(owner, ip))
            .collect();
        return Some(Outcome::Records(records));
    }
    if is_under(&name, "invalid") {
        return Some(Outcome::Code(ResponseCode::NXDomain));
    }
    if qtype == RecordType::PTR {
        if let Some(ip) = answer::reverse_address(owner) {
            if ip.is_loopback() {
                return Some(Outcome::Records(answer::ptr_record(owner, "localhost").into_iter().collect()));
            }
        }
    }
    None
}

/// Whether normalized `name` is `zone` or a name under it.
fn is_under(name: &str, zone: &str) -> bool {
    name == zone || name.strip_suffix(zone).is_some_and(|head| head.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::{read, tests::query_bytes, Read};

    fn outcome(name: &str, qtype: RecordType) -> Option<String> {
        let Read::Query(request) = read(&query_bytes(1, name, qtype, None)) else { panic!() };
        answer(&request).map(|o| o.summary())
    }

    #[test]
    fn localhost_and_invalid() {
        assert_eq!(outcome("localhost.", RecordType::A).as_deref(), Some("127.0.0.1"));
        assert_eq!(outcome("x.LOCALHOST.", RecordType::AAAA).as_deref(), Some("::1"));
        assert_eq!(outcome("localhost.", RecordType::MX).as_deref(), Some("NODATA"));
        assert_eq!(outcome("a.invalid.", RecordType::A).as_deref(), Some("NXDOMAIN"));
        assert_eq!(outcome("1.0.0.127.in-addr.arpa.", RecordType::PTR).as_deref(), Some("localhost"));
        assert_eq!(outcome("notlocalhost.", RecordType::A), None);
        assert_eq!(outcome("example.com.", RecordType::A), None);
    }
}
