//! Reading a client's query: decode, validate, and the error replies for
//! what we will not answer (pure, never panics).

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use super::reply;

/// A query we can answer.
#[derive(Debug, Clone)]
pub struct Request {
    /// The decoded message (exactly one question).
    pub message: Message,
    /// The bytes as received (forwarded as they are by `TcpViaSocks`).
    pub raw: Vec<u8>,
}

impl Request {
    pub fn question(&self) -> &Query {
        // `read` accepts only messages with exactly one question.
        &self.message.queries[0]
    }

    pub fn edns(&self) -> Option<&Edns> {
        self.message.edns.as_ref()
    }

    /// The question's name, normalized: lower case, no trailing dot.
    /// `None` when a label holds anything but letters, digits, `-` and `_`
    /// (no proxy resolves such a name; we do not pass it on).
    pub fn name(&self) -> Option<String> {
        host_name(self.question())
    }
}

/// What to do with a received message.
#[derive(Debug)]
pub enum Read {
    /// Nothing to answer: shorter than a header, or a response.
    Ignore,
    /// An error reply, already encoded (FORMERR, NOTIMP, REFUSED, BADVERS).
    Reject {
        reply: Vec<u8>,
        rcode: ResponseCode,
    },
    Query(Request),
}

const HEADER_LEN: usize = 12;

pub fn read(bytes: &[u8]) -> Read {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Read::Ignore;
    };
    // QR set: a response; answering it could start a loop.
    if header[2] & 0x80 != 0 {
        return Read::Ignore;
    }
    let message = match Message::from_vec(bytes) {
        Ok(message) => message,
        Err(_) => return reject_raw(header, ResponseCode::FormErr),
    };
    if message.message_type != MessageType::Query {
        return Read::Ignore;
    }
    if message.op_code != OpCode::Query {
        return reject(&message, ResponseCode::NotImp);
    }
    if message.queries.len() != 1 {
        return reject(&message, ResponseCode::FormErr);
    }
    if let Some(edns) = &message.edns {
        if edns.version() > 0 {
            return reject(&message, ResponseCode::BADVERS);
        }
    }
    let question = &message.queries[0];
    match question.query_type() {
        RecordType::OPT => return reject(&message, ResponseCode::FormErr),
        RecordType::AXFR | RecordType::IXFR => return reject(&message, ResponseCode::Refused),
        _ => {}
    }
    if !matches!(question.query_class(), DNSClass::IN) {
        return reject(&message, ResponseCode::Refused);
    }
    Read::Query(Request { message, raw: bytes.to_vec() })
}

fn reject(query: &Message, rcode: ResponseCode) -> Read {
    let mut response = reply::response_to(query);
    response.metadata.response_code = rcode;
    // BADVERS needs an OPT record to carry its high bits.
    if rcode == ResponseCode::BADVERS && response.edns.is_none() {
        response.edns = Some(reply::our_edns(None));
    }
    match response.to_vec() {
        Ok(reply) => Read::Reject { reply, rcode },
        Err(_) => reject_raw(&query_header(query), ResponseCode::FormErr),
    }
}

/// The 12-byte header of a message, for `reject_raw`.
fn query_header(query: &Message) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..2].copy_from_slice(&query.id.to_be_bytes());
    header[2] = (u8::from(query.op_code) & 0x0f) << 3 | u8::from(query.recursion_desired);
    header
}

/// A bare reply built from the query's header alone, for queries we cannot
/// decode: same ID, opcode and RD, QR set, no sections.
fn reject_raw(header: &[u8], rcode: ResponseCode) -> Read {
    let mut reply = vec![0u8; HEADER_LEN];
    reply[..2].copy_from_slice(&header[..2]);
    reply[2] = 0x80 | (header[2] & 0x79); // QR, opcode, RD
    reply[3] = rcode.low();
    Read::Reject { reply, rcode }
}

/// A response's metadata for a query (ID, opcode, RD, CD copied; RA set).
pub fn response_metadata(query: &Metadata) -> Metadata {
    let mut metadata = Metadata::response_from_request(query);
    metadata.recursion_available = true;
    metadata
}

/// See `Request::name`.
pub fn host_name(question: &Query) -> Option<String> {
    let name = question.name();
    let mut out = String::with_capacity(name.len());
    for label in name.iter() {
        if label.is_empty() || !label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(label.iter().map(|&b| char::from(b.to_ascii_lowercase())));
    }
    Some(out)
}

/// The name of a query type for reports: "A", "AAAA", ..., or "TYPE65280".
pub fn type_name(qtype: RecordType) -> String {
    match qtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => <&'static str>::from(known).to_owned(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    /// A query as a stub resolver sends it.
    pub fn query_bytes(id: u16, name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        query_for(id, Name::from_ascii(name).unwrap(), qtype, edns)
    }

    /// `query_bytes` for any name: `odd_name()`, say.
    pub fn query_for(id: u16, name: Name, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name, qtype));
        if let Some(size) = edns {
            let mut edns = Edns::new();
            edns.set_max_payload(size);
            message.set_edns(edns);
        }
        message.to_vec().unwrap()
    }

    /// `A b.Example.`: a label with a space, upper case.
    pub fn odd_name() -> Name {
        Name::from_labels([&b"A b"[..], b"Example"]).unwrap()
    }

    fn rcode_of(read: Read) -> (ResponseCode, Vec<u8>) {
        match read {
            Read::Reject { reply, rcode } => (rcode, reply),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_plain_query() {
        let Read::Query(request) = read(&query_bytes(7, "WWW.Example.COM.", RecordType::A, None)) else {
            panic!("not accepted");
        };
        assert_eq!(request.name().as_deref(), Some("www.example.com"));
        assert_eq!(request.question().query_type(), RecordType::A);
    }

    #[test]
    fn ignores_short_messages_and_responses() {
        assert!(matches!(read(&[]), Read::Ignore));
        assert!(matches!(read(&[0; 11]), Read::Ignore));
        let mut response = query_bytes(1, "a.", RecordType::A, None);
        response[2] |= 0x80;
        assert!(matches!(read(&response), Read::Ignore));
    }

    #[test]
    fn malformed_queries_get_formerr_with_their_id() {
        let mut bytes = query_bytes(0xbeef, "example.com.", RecordType::A, None);
        bytes.truncate(bytes.len() - 3); // cut into the question
        let (rcode, reply) = rcode_of(read(&bytes));
        assert_eq!(rcode, ResponseCode::FormErr);
        assert_eq!(reply[..2], [0xbe, 0xef]);
        assert_eq!(reply[2] & 0x80, 0x80);
        assert_eq!(reply[3] & 0x0f, 1);
        let decoded = Message::from_vec(&reply).unwrap();
        assert_eq!(decoded.response_code, ResponseCode::FormErr);
        assert!(decoded.recursion_desired);

        // A header alone: no question.
        let (rcode, _) = rcode_of(read(&bytes[..12].iter().map(|_| 0).collect::<Vec<u8>>()));
        assert_eq!(rcode, ResponseCode::FormErr);

        // Two questions.
        let mut message = Message::from_vec(&query_bytes(2, "a.", RecordType::A, None)).unwrap();
        message.add_query(Query::query(Name::from_ascii("b.").unwrap(), RecordType::A));
        assert_eq!(rcode_of(read(&message.to_vec().unwrap())).0, ResponseCode::FormErr);
    }

    #[test]
    fn other_opcodes_classes_and_edns_versions() {
        let mut message = Message::from_vec(&query_bytes(3, "a.", RecordType::A, None)).unwrap();
        message.metadata.op_code = OpCode::Status;
        assert_eq!(rcode_of(read(&message.to_vec().unwrap())).0, ResponseCode::NotImp);

        let mut message = Message::from_vec(&query_bytes(4, "a.", RecordType::A, None)).unwrap();
        message.queries[0].set_query_class(DNSClass::CH);
        assert_eq!(rcode_of(read(&message.to_vec().unwrap())).0, ResponseCode::Refused);

        let mut message = Message::from_vec(&query_bytes(5, "a.", RecordType::A, Some(1232))).unwrap();
        message.edns.as_mut().unwrap().set_version(1);
        let (rcode, reply) = rcode_of(read(&message.to_vec().unwrap()));
        assert_eq!(rcode, ResponseCode::BADVERS);
        // BADVERS and BADSIG share code 16.
        assert_eq!(u16::from(Message::from_vec(&reply).unwrap().response_code), 16);

        let axfr = query_bytes(6, "a.", RecordType::AXFR, None);
        assert_eq!(rcode_of(read(&axfr)).0, ResponseCode::Refused);
    }

    #[test]
    fn names_are_normalized_or_refused() {
        let question = |name: &str| Query::query(Name::from_ascii(name).unwrap(), RecordType::A);
        assert_eq!(host_name(&question("Foo-1.Bar_x.")).as_deref(), Some("foo-1.bar_x"));
        assert_eq!(host_name(&question(".")).as_deref(), Some(""));
        assert_eq!(host_name(&Query::query(odd_name(), RecordType::A)), None);
        let dotted = Name::from_labels([&b"a.b"[..], b"c"]).unwrap();
        assert_eq!(host_name(&Query::query(dotted, RecordType::A)), None);
        assert_eq!(type_name(RecordType::AAAA), "AAAA");
        assert_eq!(type_name(RecordType::Unknown(65280)), "TYPE65280");
    }
}
