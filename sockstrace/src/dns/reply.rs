//! Building and sizing replies (pure).

use hickory_proto::op::{Edns, Message};

use super::query::response_metadata;

/// The UDP payload size we advertise and send at most (DNS Flag Day 2020:
/// no IP fragmentation on common paths).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Without EDNS, a UDP reply is at most 512 bytes (RFC 1035 4.2.1).
pub const PLAIN_UDP_LIMIT: usize = 512;
/// A reply over TCP carries a 2-byte length.
pub const TCP_LIMIT: usize = u16::MAX as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// An empty response to `query`: its ID, opcode, RD and CD, its question,
/// and our OPT record when the query had one (RFC 6891 6.1.1).
pub fn response_to(query: &Message) -> Message {
    let mut response = Message::new(query.id, hickory_proto::op::MessageType::Response, query.op_code);
    response.metadata = response_metadata(&query.metadata);
    response.add_queries(query.queries.iter().cloned());
    if let Some(edns) = &query.edns {
        response.set_edns(our_edns(Some(edns)));
    }
    response
}

/// Our OPT record: version 0, our payload size, the query's DO bit copied
/// (RFC 3225 3), no options.
pub fn our_edns(query: Option<&Edns>) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(query.is_some_and(|q| q.flags().dnssec_ok));
    edns
}

/// The largest reply the client takes over `transport`.
pub fn limit(transport: Transport, query_edns: Option<&Edns>) -> usize {
    match (transport, query_edns) {
        (Transport::Tcp, _) => TCP_LIMIT,
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(edns)) => usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD)),
    }
}

/// Encodes `response`; when it exceeds `limit`, sends instead the header
/// with TC set, the question and the OPT record, so the client retries over
/// TCP. Returns the bytes and whether they were truncated.
pub fn encode(response: &Message, limit: usize) -> anyhow::Result<(Vec<u8>, bool)> {
    use anyhow::Context;
    let bytes = response.to_vec().context("encoding a DNS reply")?;
    if bytes.len() <= limit {
        return Ok((bytes, false));
    }
    let truncated = response.truncate().to_vec().context("encoding a truncated DNS reply")?;
    Ok((truncated, true))
}

/// Like `encode`, for a reply we pass on as received (`raw`, decoded as
/// `parsed`): unchanged when it fits.
pub fn fit(raw: Vec<u8>, parsed: &Message, limit: usize) -> anyhow::Result<(Vec<u8>, bool)> {
    if raw.len() <= limit {
        return Ok((raw, false));
    }
    encode(parsed, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::tests::query_bytes;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};
    use std::net::Ipv4Addr;

    fn big_response(edns: Option<u16>) -> Message {
        let query = Message::from_vec(&query_bytes(9, "big.example.", RecordType::A, edns)).unwrap();
        let mut response = response_to(&query);
        let name = query.queries[0].name().clone();
        for i in 0..60u8 {
            response.add_answer(Record::from_rdata(
                name.clone(),
                60,
                RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
            ));
        }
        response
    }

    #[test]
    fn truncates_udp_replies_over_512_without_edns() {
        let response = big_response(None);
        let (bytes, truncated) = encode(&response, limit(Transport::Udp, None)).unwrap();
        assert!(truncated);
        assert!(bytes.len() <= 512);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(decoded.truncation);
        assert!(decoded.answers.is_empty());
        assert_eq!(decoded.queries.len(), 1);
        assert_eq!(decoded.id, 9);

        let (bytes, truncated) = encode(&response, limit(Transport::Tcp, None)).unwrap();
        assert!(!truncated);
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 60);
    }

    #[test]
    fn edns_raises_the_udp_limit_and_is_echoed() {
        let response = big_response(Some(4096));
        let edns = response.edns.clone().unwrap();
        assert_eq!(edns.max_payload(), EDNS_PAYLOAD);
        assert_eq!(limit(Transport::Udp, Some(&edns)), 1232);
        let (bytes, truncated) = encode(&response, 1232).unwrap();
        assert!(!truncated, "{} bytes", bytes.len());
        assert!(Message::from_vec(&bytes).unwrap().edns.is_some());
        let mut small = Edns::new();
        small.set_max_payload(100);
        assert_eq!(limit(Transport::Udp, Some(&small)), 512);
    }
}
