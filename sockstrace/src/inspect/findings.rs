//! What in a SOCKS handshake is a leak, given the user's rules. Pure.
//!
//! The authentication rules judge what the connection carries, not what the
//! program offered: the method the proxy *chose* (a greeting offering
//! username/password and "none" leaves the choice to the proxy) and the user
//! name actually sent (none under "no authentication", SOCKS4's user id,
//! which Tor isolates streams by too).

use super::parse::{Asked, Credentials, Socks4};
use crate::policy::Reason;

/// `--require-socks-auth`, `--isolation-regex`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub require_auth: bool,
    pub isolation: Option<regex::Regex>,
}

/// SOCKS5 methods (RFC 1928).
pub const NO_AUTH: u8 = 0;
pub const USERPASS: u8 = 2;
pub const NO_ACCEPTABLE_METHOD: u8 = 0xff;

/// A SOCKS4 request naming an address (the program resolved the name itself:
/// SOCKS4a would carry the name), or whose user id breaks the rules.
pub fn socks4(rules: &Rules, request: &Socks4) -> Option<Reason> {
    if matches!(request.asked, Asked::Address(_)) {
        return Some(Reason::SocksByAddress);
    }
    user_id(rules, &request.user)
}

/// A user name (SOCKS4's user id; empty when there is none) under the rules:
/// none while they require one, or one outside the isolation pattern.
pub fn user_id(rules: &Rules, user: &[u8]) -> Option<Reason> {
    if rules.require_auth && user.is_empty() {
        return Some(Reason::SocksNoAuth);
    }
    credentials(rules, user)
}

/// A greeting that offers no username/password while the rules require it
/// (the proxy could only choose no authentication).
pub fn greeting(rules: &Rules, methods: &[u8]) -> Option<Reason> {
    (rules.require_auth && !methods.contains(&USERPASS)).then_some(Reason::SocksNoAuth)
}

/// What the relay does with the method the proxy chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// Read the credentials next (username/password).
    Credentials,
    /// Read the request next (no authentication), unless this is a finding.
    Request(Option<Reason>),
    /// The proxy accepts none of the methods: the connection ends.
    End,
    /// A method whose messages the relay cannot read (GSSAPI, private
    /// methods): what follows would pass unread.
    Uninspectable,
}

/// The method the proxy chose, under the rules.
pub fn chosen(rules: &Rules, method: u8) -> Chosen {
    match method {
        USERPASS => Chosen::Credentials,
        NO_AUTH => Chosen::Request(user_id(rules, b"")),
        NO_ACCEPTABLE_METHOD => Chosen::End,
        _ => Chosen::Uninspectable,
    }
}

/// RFC 1929 credentials under the rules: an empty user name and password are no
/// authentication (the same for every stream: nothing to isolate by); a user name
/// outside the isolation pattern.
pub fn userpass(rules: &Rules, sent: &Credentials) -> Option<Reason> {
    if rules.require_auth && sent.user.is_empty() && sent.pass.is_empty() {
        return Some(Reason::SocksNoAuth);
    }
    credentials(rules, &sent.user)
}

/// Credentials that do not match the isolation pattern.
pub fn credentials(rules: &Rules, user: &[u8]) -> Option<Reason> {
    let pattern = rules.isolation.as_ref()?;
    (!pattern.is_match(&String::from_utf8_lossy(user))).then_some(Reason::SocksIsolation)
}

/// SOCKS5 CONNECT.
pub const CMD_CONNECT: u8 = 1;
/// Tor's RESOLVE extension: the address of a name (by address, a name resolved
/// locally asked again).
pub const CMD_RESOLVE: u8 = 0xf0;

/// What makes a SOCKS5 request by address mean a name resolved locally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The same process made a DNS query just before.
    pub recently: bool,
    /// The address is one of the `--dns proxy` resolver's fake addresses:
    /// only a local lookup hands those out, whoever made it.
    pub fake_address: bool,
}

/// A SOCKS5 request (`command`) by address for a name resolved locally: a
/// CONNECT or Tor's RESOLVE. Not BIND or UDP ASSOCIATE, whose address is no
/// destination (the peer expected, the program's own source: `0.0.0.0:0`), nor
/// a reverse lookup.
pub fn request(asked: &Asked, command: u8, resolved: Resolved) -> Option<Reason> {
    (matches!(asked, Asked::Address(_))
        && (resolved.recently || resolved.fake_address)
        && matches!(command, CMD_CONNECT | CMD_RESOLVE))
    .then_some(Reason::SocksByAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_ip() -> Asked {
        Asked::Address("10.0.0.1:80".parse().unwrap())
    }
    fn by_name() -> Asked {
        Asked::Name("example.com".into(), 80)
    }
    fn strict() -> Rules {
        Rules { require_auth: true, isolation: Some(regex::Regex::new("^iso-[0-9]+$").unwrap()) }
    }
    fn isolating() -> Rules {
        Rules { require_auth: false, isolation: Some(regex::Regex::new("^iso-[0-9]+$").unwrap()) }
    }
    fn require() -> Rules {
        Rules { require_auth: true, isolation: None }
    }
    fn v4(asked: Asked, user: &[u8]) -> Socks4 {
        Socks4 { asked, user: user.to_vec() }
    }

    #[test]
    fn flags_what_leaks_through_the_proxy() {
        let none = Rules::default();
        assert_eq!(socks4(&none, &v4(by_ip(), b"u")), Some(Reason::SocksByAddress));
        assert_eq!(socks4(&none, &v4(by_name(), b"")), None);
        const CONNECT: u8 = 1;
        let recently = Resolved { recently: true, fake_address: false };
        assert_eq!(request(&by_ip(), CONNECT, recently), Some(Reason::SocksByAddress));
        assert_eq!(request(&by_ip(), CONNECT, Resolved::default()), None);
        assert_eq!(request(&by_name(), CONNECT, recently), None);
        // Tor's RESOLVE (0xF0) by address is still flagged; RESOLVE_PTR is not.
        assert_eq!(request(&by_ip(), 0xf0, recently), Some(Reason::SocksByAddress));
        // Tor's RESOLVE_PTR (0xF1), the name of an address, carries one by nature.
        assert_eq!(request(&by_ip(), 0xf1, recently), None);
        // BIND and UDP ASSOCIATE name no destination.
        assert_eq!(request(&by_ip(), 2, recently), None);
        assert_eq!(request(&by_ip(), 3, recently), None);
    }

    #[test]
    fn empty_credentials_are_no_authentication() {
        let sent = |user: &[u8], pass: &[u8]| Credentials { user: user.to_vec(), pass: pass.to_vec() };
        assert_eq!(userpass(&require(), &sent(b"", b"")), Some(Reason::SocksNoAuth));
        assert_eq!(userpass(&require(), &sent(b"", b"p")), None, "a password isolates too");
        assert_eq!(userpass(&require(), &sent(b"u", b"")), None);
        assert_eq!(userpass(&Rules::default(), &sent(b"", b"")), None);
        assert_eq!(userpass(&strict(), &sent(b"shared", b"p")), Some(Reason::SocksIsolation));
    }

    #[test]
    fn a_fake_address_is_by_address_whoever_resolved_it() {
        let fake = Resolved { recently: false, fake_address: true };
        assert_eq!(request(&by_ip(), 1, fake), Some(Reason::SocksByAddress));
        assert_eq!(request(&by_name(), 1, fake), None);
    }

    #[test]
    fn applies_the_users_rules() {
        let none = Rules::default();
        assert_eq!(greeting(&none, &[0]), None);
        assert_eq!(credentials(&none, b"anyone"), None);
        assert_eq!(greeting(&strict(), &[0]), Some(Reason::SocksNoAuth));
        assert_eq!(greeting(&strict(), &[0, 2]), None);
        assert_eq!(credentials(&strict(), b"iso-42"), None);
        assert_eq!(credentials(&strict(), b"shared"), Some(Reason::SocksIsolation));
    }

    #[test]
    fn the_method_the_proxy_chose_is_judged() {
        let none = Rules::default();
        assert_eq!(chosen(&none, NO_AUTH), Chosen::Request(None));
        assert_eq!(chosen(&require(), NO_AUTH), Chosen::Request(Some(Reason::SocksNoAuth)));
        assert_eq!(chosen(&isolating(), NO_AUTH), Chosen::Request(Some(Reason::SocksIsolation)));
        assert_eq!(chosen(&strict(), NO_AUTH), Chosen::Request(Some(Reason::SocksNoAuth)));
        let anything = Rules { require_auth: false, isolation: Some(regex::Regex::new(".*").unwrap()) };
        assert_eq!(chosen(&anything, NO_AUTH), Chosen::Request(None), "an empty name matches .*");
        for rules in [none, strict()] {
            assert_eq!(chosen(&rules, USERPASS), Chosen::Credentials);
            assert_eq!(chosen(&rules, NO_ACCEPTABLE_METHOD), Chosen::End);
            for method in [1, 3, 0x80, 0xfe] {
                assert_eq!(chosen(&rules, method), Chosen::Uninspectable, "method {method}");
            }
        }
    }

    #[test]
    fn socks4_user_ids_are_judged_like_credentials() {
        assert_eq!(socks4(&require(), &v4(by_name(), b"")), Some(Reason::SocksNoAuth));
        assert_eq!(socks4(&require(), &v4(by_name(), b"u")), None);
        assert_eq!(socks4(&isolating(), &v4(by_name(), b"shared")), Some(Reason::SocksIsolation));
        assert_eq!(socks4(&isolating(), &v4(by_name(), b"")), Some(Reason::SocksIsolation));
        assert_eq!(socks4(&strict(), &v4(by_name(), b"iso-7")), None);
        assert_eq!(socks4(&strict(), &v4(by_ip(), b"iso-7")), Some(Reason::SocksByAddress));
    }
}
