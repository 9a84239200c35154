//! A Server-Sent Events parser (the WHATWG event-stream format): bytes in,
//! whole events out. Only what the change stream needs: `data`, `id`,
//! `event`; comments and `retry` are skipped.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) data: String,
    pub(crate) id: Option<String>,
}

/// Accumulates chunks; lines may be split anywhere between chunks.
#[derive(Default)]
pub(crate) struct Parser {
    line: Vec<u8>,
    data: Vec<String>,
    event: Option<String>,
    id: Option<String>,
    /// A `\r` ended the last line: a `\n` right after it is the same line end.
    after_cr: bool,
}

/// An unterminated line longer than this is dropped: the stream is
/// notifications, never large.
const MAX_LINE: usize = 1 << 20;

impl Parser {
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.line_done(&String::from_utf8_lossy(&line)) {
                        out.push(ev);
                    }
                }
                _ if self.line.len() < MAX_LINE => self.line.push(b),
                _ => {}
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take().unwrap_or_else(|| "message".to_owned());
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent {
                event,
                data,
                id: self.id.clone(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks_and_line_ends() {
        let mut p = Parser::default();
        assert!(p.push(b": keep-alive\n\nid: 7\r\nevent: mess").is_empty());
        let out = p.push(b"age\r\ndata: {\"type\":\r\ndata: 1}\r\n\r\n");
        assert_eq!(
            out,
            vec![SseEvent {
                event: "message".into(),
                data: "{\"type\":\n1}".into(),
                id: Some("7".into()),
            }]
        );
        let out = p.push(b"data:x\n\n");
        assert_eq!(out[0].id.as_deref(), Some("7"), "the last id persists");
        assert_eq!(out[0].data, "x");
    }
}
