//! Whether a host name asked of a proxy is an address literal: what a proxy's
//! `getaddrinfo` (or a C string copy of the name) turns into an address without
//! resolving anything. Such a "name" is a request by address (SOCKS4, ATYP 1
//! or 4): the program resolved it, or had an address. Pure.
//!
//! Read the way glibc reads it, and on the wide side: the name ends at its
//! first NUL (a C proxy copies it into a string) and, for IPv4, at its first
//! white space (`inet_aton` before glibc 2.30 stopped there); one trailing
//! dot and brackets around IPv6 are taken off; IPv4 takes every `inet_aton`
//! form (`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`); IPv6 may carry a
//! scope (`fe80::1%eth0`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address `host` spells, if it is an address literal.
pub fn address_literal(host: &[u8]) -> Option<IpAddr> {
    let host = host.split(|&b| b == 0).next().unwrap_or_default();
    // IPv4: the first word, whatever follows it (bytes that are no text included).
    let word = host.split(|&b| c_space(b)).next().unwrap_or_default();
    let word = std::str::from_utf8(word).ok().unwrap_or_default();
    if let Some(v4) = inet_aton(word.strip_suffix('.').unwrap_or(word)) {
        return Some(IpAddr::V4(v4));
    }
    let host = std::str::from_utf8(host).ok()?;
    let host = host.strip_suffix('.').unwrap_or(host);
    let v6 = host.trim_matches(|c: char| c.is_ascii() && c_space(c as u8));
    let v6 = v6.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(v6);
    let v6 = v6.split('%').next().unwrap_or_default();
    v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// C's `isspace` in the C locale: space, `\t`, `\n`, `\v`, `\f`, `\r` (Rust's
/// ASCII white space lacks `\v`).
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading `0`)
/// or hexadecimal (`0x`); the last part fills the bytes left.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = s.split('.').map(part).collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|&p| p > 0xff) {
        return None;
    }
    let rest_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let high = leading.iter().enumerate().fold(0u64, |acc, (i, &p)| acc | p << (24 - 8 * i as u32));
    u32::try_from(high | last).ok().map(Ipv4Addr::from)
}

/// One part: starts with a digit; `0x` hexadecimal, `0` octal, else decimal.
fn part(p: &str) -> Option<u64> {
    if !p.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
        None => (p, 10),
    };
    if digits.is_empty() {
        // "0x" alone reads as 0.
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().filter(|&v| v <= u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Option<String> {
        address_literal(s.as_bytes()).map(|ip| ip.to_string())
    }

    #[test]
    fn every_inet_aton_form_is_an_address() {
        for spelled in [
            "127.0.0.2",
            "2130706434",
            "0x7f000002",
            "0x7f.2",
            "0x7F.0.2",
            "127.2",
            "127.0.2",
            "0177.0.0.02",
            "017700000002",
            "127.0.0.2.",
            "127.0.0.2 trailing",
            "127.0.0.2\0.example.com",
        ] {
            assert_eq!(lit(spelled).as_deref(), Some("127.0.0.2"), "{spelled:?}");
        }
        for cut in [&b"127.0.0.2\x0bx"[..], b"127.0.0.2 \xff", b"127.0.0.2\x0c", b"127.0.0.2.\tx"] {
            let got = address_literal(cut).map(|ip| ip.to_string());
            assert_eq!(got.as_deref(), Some("127.0.0.2"), "cut at C white space: {cut:?}");
        }
        assert_eq!(lit("1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(lit("0").as_deref(), Some("0.0.0.0"));
        assert_eq!(lit("4294967295").as_deref(), Some("255.255.255.255"));
        assert_eq!(lit("100.64.1").as_deref(), Some("100.64.0.1"));
    }

    #[test]
    fn ipv6_in_any_dress_is_an_address() {
        assert_eq!(lit("::1").as_deref(), Some("::1"));
        assert_eq!(lit("[::1]").as_deref(), Some("::1"));
        assert_eq!(lit("fe80::1%eth0").as_deref(), Some("fe80::1"));
        assert_eq!(lit("::ffff:127.0.0.2").as_deref(), Some("::ffff:127.0.0.2"));
        assert_eq!(lit("fd7a:736f:636b::1").as_deref(), Some("fd7a:736f:636b::1"));
    }

    #[test]
    fn names_stay_names() {
        for name in [
            "example.com",
            "1.2.3.4.nip.io",
            "web.sockstrace.test",
            "deadbeef",
            "",
            ".",
            "1..2",
            "256.0.0.1",
            "1.2.3.4.5",
            "08.0.0.1",
            "0x1g",
            "4294967296",
            "1.16777216",
            "1.2.65536",
            "-1.0.0.1",
            "1.2.3.4x",
        ] {
            assert_eq!(lit(name), None, "{name:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = address_literal(&bytes);
        }

        #[test]
        fn a_dotted_quad_is_itself(a: u8, b: u8, c: u8, d: u8) {
            let s = format!("{a}.{b}.{c}.{d}");
            proptest::prop_assert_eq!(lit(&s), Some(s.clone()));
        }
    }
}
