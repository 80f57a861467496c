//! What in a SOCKS handshake is a leak, given the user's rules. Pure.

use super::parse::Asked;
use crate::policy::Reason;

/// `--require-socks-auth`, `--isolation-regex`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub require_auth: bool,
    pub isolation: Option<regex::Regex>,
}

/// A SOCKS4 request naming an address: the program resolved the name itself
/// (SOCKS4a would carry the name).
pub fn socks4(asked: &Asked) -> Option<Reason> {
    matches!(asked, Asked::Address(_)).then_some(Reason::SocksByAddress)
}

/// A greeting that offers no username/password while the rules require it.
pub fn greeting(rules: &Rules, methods: &[u8]) -> Option<Reason> {
    const USERPASS: u8 = 2;
    (rules.require_auth && !methods.contains(&USERPASS)).then_some(Reason::SocksNoAuth)
}

/// Credentials that do not match the isolation pattern.
pub fn credentials(rules: &Rules, user: &[u8]) -> Option<Reason> {
    let pattern = rules.isolation.as_ref()?;
    (!pattern.is_match(&String::from_utf8_lossy(user))).then_some(Reason::SocksIsolation)
}

/// Tor's RESOLVE_PTR extension: the name of an address. It carries an
/// address by nature and connects nowhere.
pub const CMD_RESOLVE_PTR: u8 = 0xf1;

/// A SOCKS5 request (`command`, e.g. CONNECT) by address right after the
/// same process made a DNS query; a reverse lookup is none.
pub fn request(asked: &Asked, command: u8, resolved_recently: bool) -> Option<Reason> {
    (matches!(asked, Asked::Address(_)) && resolved_recently && command != CMD_RESOLVE_PTR)
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

    #[test]
    fn flags_what_leaks_through_the_proxy() {
        assert_eq!(socks4(&by_ip()), Some(Reason::SocksByAddress));
        assert_eq!(socks4(&by_name()), None);
        const CONNECT: u8 = 1;
        assert_eq!(request(&by_ip(), CONNECT, true), Some(Reason::SocksByAddress));
        assert_eq!(request(&by_ip(), CONNECT, false), None);
        assert_eq!(request(&by_name(), CONNECT, true), None);
        // Tor's RESOLVE (0xF0) by address is still flagged; RESOLVE_PTR is not.
        assert_eq!(request(&by_ip(), 0xf0, true), Some(Reason::SocksByAddress));
        assert_eq!(request(&by_ip(), CMD_RESOLVE_PTR, true), None);
    }

    #[test]
    fn applies_the_users_rules() {
        let none = Rules::default();
        assert_eq!(greeting(&none, &[0]), None);
        assert_eq!(credentials(&none, b"anyone"), None);
        let strict =
            Rules { require_auth: true, isolation: Some(regex::Regex::new("^iso-[0-9]+$").unwrap()) };
        assert_eq!(greeting(&strict, &[0]), Some(Reason::SocksNoAuth));
        assert_eq!(greeting(&strict, &[0, 2]), None);
        assert_eq!(credentials(&strict, b"iso-42"), None);
        assert_eq!(credentials(&strict, b"shared"), Some(Reason::SocksIsolation));
    }
}
