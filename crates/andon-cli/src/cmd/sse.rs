//! A minimal Server-Sent Events reader over a reqwest response: enough for
//! the server's streams (`event:`, `data:`, `id:` fields, blank-line framed).

use anyhow::Result;
use futures::StreamExt;

#[derive(Debug, Default, Clone)]
pub(crate) struct Message {
    pub(crate) event: String,
    pub(crate) data: String,
}

/// Calls `on_message` for each message until it returns false or the stream ends.
pub(crate) async fn read(
    resp: reqwest::Response,
    mut on_message: impl FnMut(Message) -> bool,
) -> Result<()> {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut msg = Message::default();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !msg.event.is_empty() || !msg.data.is_empty() {
                    let done = !on_message(std::mem::take(&mut msg));
                    if done {
                        return Ok(());
                    }
                }
            } else if let Some(v) = line.strip_prefix("event:") {
                msg.event = v.trim_start().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !msg.data.is_empty() {
                    msg.data.push('\n');
                }
                msg.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }
    Ok(())
}
