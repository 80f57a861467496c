//! DNS over TCP framing (RFC 1035 4.2.2): each message preceded by its
//! length as 2 bytes, big-endian.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads one length-prefixed DNS message; `None` at a clean end of stream.
pub async fn read<R: AsyncReadExt + Unpin>(reader: &mut R) -> anyhow::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("reading a DNS message length"),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader.read_exact(&mut message).await.context("reading a DNS message")?;
    Ok(Some(message))
}

/// Writes one length-prefixed DNS message (in one write).
pub async fn write<W: AsyncWriteExt + Unpin>(writer: &mut W, message: &[u8]) -> anyhow::Result<()> {
    let len = u16::try_from(message.len()).context("a DNS message longer than 65535 bytes")?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    writer.write_all(&framed).await.context("writing a DNS message")
}
