//! `Upstream::TorResolve`: A, AAAA and PTR through Tor's SOCKS extensions
//! RESOLVE (0xF0) and RESOLVE_PTR (0xF1), one proxy connection per query,
//! each with fresh credentials (its own circuit).
//!
//! RESOLVE yields one address, IPv4 unless the SOCKS port prefers IPv6: an
//! A question answered with an IPv6 address (or AAAA with IPv4) gets NODATA.
//! Other query types get NODATA: Tor resolves nothing else. Tor reports a
//! failed lookup as "host unreachable" (reply 4): NXDOMAIN; any other failure
//! is SERVFAIL. `.onion` names do not resolve this way: use `FakeIp`.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::answer::{self, Outcome};
use super::proxy;
use super::query::Request;

/// The SOCKS reply Tor sends when a lookup fails.
const HOST_UNREACHABLE: u8 = 4;

pub async fn answer(proxy_addr: SocketAddr, request: &Request) -> anyhow::Result<Outcome> {
    let question = request.question();
    let owner = question.name();
    let qtype = question.query_type();
    let Some(name) = request.name() else {
        return Ok(Outcome::Code(ResponseCode::Refused));
    };
    match qtype {
        RecordType::PTR => {
            let Some(ip) = answer::reverse_address(owner) else {
                return Ok(Outcome::Code(ResponseCode::NXDomain));
            };
            match proxy::resolve_ptr(proxy_addr, ip).await {
                Ok(target) => match answer::ptr_record(owner, &target) {
                    Some(record) => Ok(Outcome::Records(vec![record])),
                    None => anyhow::bail!("RESOLVE_PTR {ip}: the proxy answered an unusable name"),
                },
                Err(e) => not_found_or(e),
            }
        }
        _ if name.is_empty() => Ok(Outcome::Records(Vec::new())),
        RecordType::A | RecordType::AAAA | RecordType::ANY => match proxy::resolve(proxy_addr, &name).await {
            Ok(ip) if answer::fits(qtype, ip) => {
                Ok(Outcome::Records(vec![answer::address_record(owner, ip)]))
            }
            Ok(_) => Ok(Outcome::Records(Vec::new())),
            Err(e) => not_found_or(e),
        },
        _ => Ok(Outcome::Records(Vec::new())),
    }
}

fn not_found_or(error: anyhow::Error) -> anyhow::Result<Outcome> {
    match proxy::refusal(&error) {
        Some(HOST_UNREACHABLE) => Ok(Outcome::Code(ResponseCode::NXDomain)),
        _ => Err(error),
    }
}
