//! `--inspect-socks`: the program's connections to its proxy pass through a
//! relay inside sockstrace that reads the SOCKS handshake before passing it
//! on, and flags what would leak even through the proxy: a SOCKS4 request
//! without a host name, a SOCKS5 CONNECT by address right after the same
//! process resolved a name itself or for one of `--dns proxy`'s fake
//! addresses (socks5 instead of socks5h; a host name that spells an address
//! is an address), a connection without authentication
//! (`--require-socks-auth`: the method the proxy chose, SOCKS4's user id),
//! and credentials that do not match `--isolation-regex`. What it cannot
//! follow (not SOCKS4/5, GSSAPI, a malformed message) is refused like a leak,
//! never passed on unread; a refused authentication or request ends the
//! connection. Sends on a connected socket are never
//! trapped (for speed), so reading the handshake needs this relay; it is
//! opt-in because every proxied byte then takes one more hop.

pub mod findings;
mod literal;
pub mod parse;
mod reach;
mod relay;

pub use findings::Rules;
pub use reach::proxy_reached;
pub use relay::{DnsSeen, Handoff, Inspector, Origin};
