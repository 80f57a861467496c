//! `aya::Pod` for the map keys and values userspace reads and writes (the `user` feature).
//!
//! aya copies these to and from the kernel as bytes, so each must have no implicit padding (no
//! uninitialised byte is handed over) and accept any bit pattern (a value read back is whatever
//! the kernel holds). Every type here is `#[repr(C)]` integers, byte arrays and [`Ip6`](crate::Ip6) (two
//! `u64`s), with explicit `_pad` fields where alignment needs them; the layout asserts in the
//! crate root pin each size to the sum of its fields.

use crate::{Config, ExemptCount, ProcRecord, Rule, SockFacts, UdpPeer, UdpPeerKey};

// SAFETY: `repr(C)` integers (explicit `_pad`): 24 bytes, its fields' sum (asserted); any bit
// pattern is a valid value.
unsafe impl aya::Pod for Config {}

// SAFETY: `repr(C)` of two `Ip6`, integers and an explicit `_pad`: 40 bytes, its fields' sum
// (asserted); any bit pattern is a valid value.
unsafe impl aya::Pod for Rule {}

// SAFETY: `repr(C)` integers and byte arrays (explicit `_pad`): 160 bytes, its fields' sum
// (asserted); any bit pattern is a valid value.
unsafe impl aya::Pod for SockFacts {}

// SAFETY: `repr(C)` integers and byte arrays: 56 + `FILENAME_LEN` bytes, its fields' sum
// (asserted); any bit pattern is a valid value.
unsafe impl aya::Pod for ProcRecord {}

// SAFETY: `repr(C)` integers and a byte array: 64 bytes, its fields' sum (asserted); any bit
// pattern is a valid value.
unsafe impl aya::Pod for ExemptCount {}

// SAFETY: `repr(C)` integers (explicit `_pad`): 32 bytes, its fields' sum (asserted); any bit
// pattern is a valid value.
unsafe impl aya::Pod for UdpPeerKey {}

// SAFETY: `repr(C)` integers (explicit `_pad`): 24 bytes, its fields' sum (asserted); any bit
// pattern is a valid value.
unsafe impl aya::Pod for UdpPeer {}
