//! `--allow` and `--proxy` values.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;

use crate::net::sockaddr::normalize;

/// One `--allow` value: an address or network with an optional port, or a
/// unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    Net { net: IpNet, port: Option<u16> },
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("'{0}' is not an address, CIDR network, ADDR:PORT or unix:PATH (write IPv6 with a port as [ADDR]:PORT)")]
    Unparseable(String),
    #[error("'{0}': a unix: rule needs an absolute path")]
    RelativeUnixPath(String),
    #[error("'{0}' is not a proxy address of the form IP:PORT or [IPv6]:PORT")]
    BadProxy(String),
    #[error("'{0}': the port must not be 0")]
    ZeroPort(String),
}

impl AllowRule {
    /// Whether an inet destination matches this rule.
    pub fn matches(&self, dst: SocketAddr) -> bool {
        match self {
            AllowRule::Net { net, port } => net.contains(&dst.ip()) && port.is_none_or(|p| p == dst.port()),
            AllowRule::Unix(_) => false,
        }
    }
}

fn host_net(ip: IpAddr) -> IpNet {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    IpNet::from(ip)
}

fn parse_net(text: &str) -> Option<IpNet> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(host_net(ip));
    }
    text.parse::<IpNet>().ok().map(|n| n.trunc())
}

fn parse_port(text: &str, whole: &str) -> Result<u16, RuleError> {
    match text.parse::<u16>() {
        Ok(0) => Err(RuleError::ZeroPort(whole.into())),
        Ok(p) => Ok(p),
        Err(_) => Err(RuleError::Unparseable(whole.into())),
    }
}

impl FromStr for AllowRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = || RuleError::Unparseable(text.into());
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(RuleError::RelativeUnixPath(text.into()));
            }
            return Ok(AllowRule::Unix(PathBuf::from(path)));
        }
        // [v6 or v6/len]:port, or [v6]
        if let Some(rest) = text.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
            let net = parse_net(inner).ok_or_else(bad)?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':').ok_or_else(bad)?, text)?),
            };
            return Ok(AllowRule::Net { net, port });
        }
        // A bare IPv6 address or network (contains more than one ':').
        if text.matches(':').count() > 1 {
            let net = parse_net(text).ok_or_else(bad)?;
            return Ok(AllowRule::Net { net, port: None });
        }
        match text.split_once(':') {
            Some((host, port)) => Ok(AllowRule::Net {
                net: parse_net(host).ok_or_else(bad)?,
                port: Some(parse_port(port, text)?),
            }),
            None => Ok(AllowRule::Net { net: parse_net(text).ok_or_else(bad)?, port: None }),
        }
    }
}

/// Parses an address or CIDR network (`--allow-incoming-from`).
pub fn parse_network(text: &str) -> Result<IpNet, RuleError> {
    parse_net(text.trim()).ok_or_else(|| RuleError::Unparseable(text.into()))
}

/// Parses a `--proxy` value: `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_proxy(text: &str) -> Result<SocketAddr, RuleError> {
    let addr: SocketAddr = text.trim().parse().map_err(|_| RuleError::BadProxy(text.into()))?;
    if addr.port() == 0 {
        return Err(RuleError::ZeroPort(text.into()));
    }
    Ok(normalize(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> AllowRule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn net(text: &str, port: Option<u16>) -> AllowRule {
        AllowRule::Net { net: text.parse().unwrap(), port }
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(rule("127.0.0.5"), net("127.0.0.5/32", None));
        assert_eq!(rule("127.0.0.5:80"), net("127.0.0.5/32", Some(80)));
        assert_eq!(rule("10.0.0.0/8"), net("10.0.0.0/8", None));
        assert_eq!(rule("10.1.2.3/8:443"), net("10.0.0.0/8", Some(443)));
        assert_eq!(rule("::1"), net("::1/128", None));
        assert_eq!(rule("[::1]:80"), net("::1/128", Some(80)));
        assert_eq!(rule("2001:db8::/32"), net("2001:db8::/32", None));
        assert_eq!(rule("[2001:db8::/32]:443"), net("2001:db8::/32", Some(443)));
        assert_eq!(rule("::ffff:1.2.3.4"), net("1.2.3.4/32", None));
        assert_eq!(rule("unix:/run/x.sock"), AllowRule::Unix("/run/x.sock".into()));
    }

    #[test]
    fn rejects_garbage_with_the_value_in_the_message() {
        for bad in ["", "foo", "1.2.3", "1.2.3.4:", "1.2.3.4:99999", "[::1", "[::1]80", "10.0.0.0/33"] {
            let err = bad.parse::<AllowRule>().unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        assert_eq!("1.2.3.4:0".parse::<AllowRule>(), Err(RuleError::ZeroPort("1.2.3.4:0".into())));
        assert_eq!("unix:rel".parse::<AllowRule>(), Err(RuleError::RelativeUnixPath("unix:rel".into())));
    }

    #[test]
    fn matches_address_network_and_port() {
        let dst: SocketAddr = "10.9.8.7:443".parse().unwrap();
        assert!(rule("10.0.0.0/8").matches(dst));
        assert!(rule("10.0.0.0/8:443").matches(dst));
        assert!(!rule("10.0.0.0/8:80").matches(dst));
        assert!(!rule("11.0.0.0/8").matches(dst));
        assert!(!rule("unix:/x").matches(dst));
        assert!(rule("[::1]:80").matches("[::1]:80".parse().unwrap()));
    }

    #[test]
    fn parses_proxies() {
        assert_eq!(parse_proxy("127.0.0.1:9050"), Ok("127.0.0.1:9050".parse().unwrap()));
        assert_eq!(parse_proxy("[::1]:9050"), Ok("[::1]:9050".parse().unwrap()));
        assert_eq!(parse_proxy("[::ffff:127.0.0.1]:9050"), Ok("127.0.0.1:9050".parse().unwrap()));
        assert!(parse_proxy("localhost:9050").is_err());
        assert!(parse_proxy("127.0.0.1").is_err());
        assert!(parse_proxy("127.0.0.1:0").is_err());
    }
}
