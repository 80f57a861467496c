//! A SOCKS5 client (RFC 1928, RFC 1929 username/password) for socksify:
//! the handshake runs on the traced program's own socket, through our
//! duplicate of it. `codec` is pure; `handshake` drives it over a fd.

pub mod codec;
mod handshake;
pub mod http;
pub mod udp;

pub use codec::{Credentials, Target};
pub use handshake::{handshake, never, Stop};
