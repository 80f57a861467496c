//! `--inspect-socks`: the program's connections to its proxy pass through a
//! relay inside sockstrace that reads the SOCKS handshake before passing it
//! on, and flags what would leak even through the proxy: a SOCKS4 request
//! without a host name, a SOCKS5 CONNECT by address right after the same
//! process resolved a name itself (socks5 instead of socks5h), a request
//! without authentication (`--require-socks-auth`), and credentials that do
//! not match `--isolation-regex`. Sends on a connected socket are never
//! trapped (for speed), so reading the handshake needs this relay; it is
//! opt-in because every proxied byte then takes one more hop.

pub mod findings;
pub mod parse;
mod reach;
mod relay;

pub use findings::Rules;
pub use reach::proxy_reached;
pub use relay::{DnsSeen, Handoff, Inspector, Origin};
