//! What a query's answer is, independent of where it came from, and how it
//! becomes a reply (pure).

use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::query::Request;
use super::reply;

/// TTL of the answers we make up: short, so a program asks again (and we
/// see it) rather than caching for long.
pub const TTL: u32 = 60;

#[derive(Debug)]
pub enum Outcome {
    /// NOERROR with these answers; none is NODATA ("the name exists, without
    /// records of this type").
    Records(Vec<Record>),
    /// This response code, no records.
    Code(ResponseCode),
    /// A reply from the upstream resolver, as received (`raw`) and decoded.
    Upstream { raw: Vec<u8>, message: Message },
}

impl Outcome {
    pub fn rcode(&self) -> ResponseCode {
        match self {
            Outcome::Records(_) => ResponseCode::NoError,
            Outcome::Code(rcode) => *rcode,
            Outcome::Upstream { message, .. } => message.response_code,
        }
    }

    /// A one-line summary for the report: the addresses or names answered,
    /// "NODATA", or the response code.
    pub fn summary(&self) -> String {
        let answers = match self {
            Outcome::Records(records) => records.as_slice(),
            Outcome::Upstream { message, .. } => message.answers.as_slice(),
            Outcome::Code(rcode) => return rcode_name(*rcode),
        };
        let rcode = self.rcode();
        if rcode != ResponseCode::NoError {
            return rcode_name(rcode);
        }
        if answers.is_empty() {
            return "NODATA".to_owned();
        }
        let mut out = String::new();
        for record in answers {
            if !out.is_empty() {
                out.push_str(", ");
            }
            match &record.data {
                RData::A(A(ip)) => out.push_str(&ip.to_string()),
                RData::AAAA(AAAA(ip)) => out.push_str(&ip.to_string()),
                RData::PTR(PTR(name)) => out.push_str(&display_name(name)),
                RData::CNAME(target) => out.push_str(&format!("CNAME {}", display_name(&target.0))),
                other => out.push_str(&super::query::type_name(other.record_type())),
            }
            if out.len() > 200 {
                out.push_str(", ...");
                break;
            }
        }
        out
    }
}

/// An answer record for the question: `ip` as A or AAAA.
pub fn address_record(owner: &Name, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), TTL, data)
}

/// A PTR record for the question's owner name, pointing at host name `target`.
pub fn ptr_record(owner: &Name, target: &str) -> Option<Record> {
    let mut name = Name::from_ascii(target).ok()?;
    name.set_fqdn(true);
    Some(Record::from_rdata(owner.clone(), TTL, RData::PTR(PTR(name))))
}

/// Whether `ip` answers a question of type `qtype` (A takes IPv4, AAAA IPv6, ANY both).
pub fn fits(qtype: RecordType, ip: IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_)) | (RecordType::ANY, _)
    )
}

/// The address a full reverse name (`4.3.2.1.in-addr.arpa.`, 32 nibbles of
/// `ip6.arpa.`) stands for.
pub fn reverse_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// The reply to `request` for `outcome`, encoded to fit `limit` bytes.
/// Returns the bytes and whether they were truncated.
pub fn encode(request: &Request, outcome: Outcome, limit: usize) -> anyhow::Result<(Vec<u8>, bool)> {
    match outcome {
        Outcome::Upstream { raw, message } => reply::fit(raw, &message, limit),
        Outcome::Records(records) => {
            let mut response = reply::response_to(&request.message);
            response.add_answers(records);
            reply::encode(&response, limit)
        }
        Outcome::Code(rcode) => {
            let mut response = reply::response_to(&request.message);
            response.metadata.response_code = rcode;
            reply::encode(&response, limit)
        }
    }
}

/// A response code as DNS tools write it: NOERROR, NXDOMAIN, SERVFAIL, ...
pub fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::BADVERS => "BADVERS".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// A name for reports: labels joined by dots, lower case, no trailing dot;
/// bytes other than printable ASCII (and `.`/`\` inside a label) as `\DDD`.
pub fn display_name(name: &Name) -> String {
    let mut out = String::new();
    for label in name.iter() {
        if !out.is_empty() {
            out.push('.');
        }
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(char::from(b.to_ascii_lowercase()));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        let name = |s: &str| Name::from_ascii(s).unwrap();
        assert_eq!(reverse_address(&name("1.0.64.100.in-addr.arpa.")), Some("100.64.0.1".parse().unwrap()));
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.6.3.6.f.6.3.7.a.7.d.f.ip6.arpa.";
        assert_eq!(reverse_address(&name(v6)), Some("fd7a:736f:636b::1".parse().unwrap()));
        assert_eq!(reverse_address(&name("64.100.in-addr.arpa.")), None);
        assert_eq!(reverse_address(&name("x.64.100.in-addr.arpa.")), None);
        assert_eq!(reverse_address(&name("example.com.")), None);
    }

    #[test]
    fn summaries_and_names() {
        let owner = Name::from_ascii("a.example.").unwrap();
        let records = vec![
            address_record(&owner, "100.64.0.1".parse().unwrap()),
            address_record(&owner, "fd7a:736f:636b::1".parse().unwrap()),
        ];
        assert_eq!(Outcome::Records(records).summary(), "100.64.0.1, fd7a:736f:636b::1");
        assert_eq!(Outcome::Records(vec![]).summary(), "NODATA");
        assert_eq!(Outcome::Code(ResponseCode::NXDomain).summary(), "NXDOMAIN");
        assert_eq!(display_name(&crate::dns::query::tests::odd_name()), "a\\032b.example");
        assert_eq!(display_name(&Name::root()), ".");
        assert!(fits(RecordType::A, "1.2.3.4".parse().unwrap()));
        assert!(!fits(RecordType::AAAA, "1.2.3.4".parse().unwrap()));
    }
}
