//! Server-sent events read from the bytes of a streamed reply, as the HTML standard's
//! `text/event-stream` format defines them: lines end in CRLF, LF or CR, `data:` lines of one event
//! are joined with LF, a blank line ends the event, `:` starts a comment, a leading byte-order mark
//! is dropped. Only the data of events is kept: chat-completion streams use no event names, ids
//! or retry times.
//!
//! Written here rather than taken from eventsource-stream because a model server's reply is many
//! small events and that crate parsed each one character by character and copied the unread
//! buffer after every line: it was the largest part of the client's own CPU per streamed call.
//! This decoder scans bytes once, keeps one buffer per reply, and hands out each event's data
//! without allocating.

/// The reply's bytes were not UTF-8 where a line needed them to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a line of the event stream is not UTF-8: {0}")]
pub struct NotUtf8(#[from] std::str::Utf8Error);

const BOM: &[u8] = "\u{feff}".as_bytes();

/// Turns chunks of a `text/event-stream` body into the data of its events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes received and not yet read as whole lines start at `read`.
    buf: Vec<u8>,
    read: usize,
    /// The data of the event being read (each `data:` line followed by LF).
    data: String,
    /// `data` was handed out and is cleared before the next line is read.
    handed_out: bool,
    /// The first line was seen (a byte-order mark can only stand before it).
    started: bool,
}

impl SseDecoder {
    /// Adds the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.read > 0 {
            // Whole lines are gone: keep only the unfinished one, moved once per chunk.
            self.buf.drain(..self.read);
            self.read = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The data of the next event complete in what was fed so far, or `None` until more comes.
    /// An event without data lines is skipped, as the format says. A line that ends in the last
    /// byte received with CR waits, since an LF may follow in the next chunk.
    pub fn next_event(&mut self) -> Result<Option<&str>, NotUtf8> {
        if std::mem::take(&mut self.handed_out) {
            self.data.clear();
        }
        loop {
            let rest = &self.buf[self.read..];
            let Some(end) = line_end(rest) else {
                return Ok(None);
            };
            let ending = match (rest[end], rest.get(end + 1)) {
                (b'\r', None) => return Ok(None),
                (b'\r', Some(b'\n')) => 2,
                _ => 1,
            };
            let mut line = &rest[..end];
            self.read += end + ending;
            if !std::mem::replace(&mut self.started, true) {
                line = line.strip_prefix(BOM).unwrap_or(line);
            }
            let line = std::str::from_utf8(line)?;
            if line.is_empty() {
                if self.data.is_empty() {
                    continue;
                }
                if self.data.ends_with('\n') {
                    self.data.pop();
                }
                self.handed_out = true;
                return Ok(Some(&self.data));
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if name == "data" {
                self.data.push_str(value);
                self.data.push('\n');
            }
        }
    }
}

/// Where the first CR or LF is. A vectorized search: lines of JSON are long, and a byte-by-byte
/// scan was the larger part of this decoder's time.
fn line_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after the other and collects every event's data.
    fn events(chunks: &[&[u8]]) -> Result<Vec<String>, NotUtf8> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            while let Some(data) = decoder.next_event()? {
                out.push(data.to_string());
            }
        }
        Ok(out)
    }

    #[test]
    fn line_ends_are_found_in_and_across_blocks() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'x'; len];
                assert_eq!(line_end(&bytes), None);
                if at < len {
                    for end in [b'\n', b'\r'] {
                        bytes[at] = end;
                        assert_eq!(line_end(&bytes), Some(at), "{len} bytes, end at {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn events_are_read_whatever_the_chunks() {
        let body = "data: {\"a\":1}\n\n: keep-alive\n\nevent: x\nid: 7\ndata: one\ndata:two\n\ndata\n\ndata: [DONE]\n\n";
        let expected = ["{\"a\":1}", "one\ntwo", "", "[DONE]"];
        assert_eq!(events(&[body.as_bytes()]).unwrap(), expected);
        // Every split of the body into two chunks reads the same.
        for at in 0..body.len() {
            let (a, b) = body.as_bytes().split_at(at);
            assert_eq!(events(&[a, b]).unwrap(), expected, "split at {at}");
        }
        // And one byte at a time.
        let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
        assert_eq!(events(&bytes).unwrap(), expected);
    }

    #[test]
    fn every_line_ending_and_a_leading_mark_are_understood() {
        let body = "\u{feff}data: a\r\n\r\ndata: b\r\rdata:  c\n\n";
        assert_eq!(events(&[body.as_bytes()]).unwrap(), ["a", "b", " c"]);
        // CR at the end of a chunk waits to see whether LF follows.
        assert_eq!(events(&[b"data: a\r", b"\n", b"\r", b"\n"]).unwrap(), ["a"]);
        assert_eq!(
            events(&[b"data: a\r", b"\r"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(events(&[b"data: a\r", b"\rx"]).unwrap(), ["a"]);
        // A mark anywhere but the start is data.
        assert_eq!(
            events(&["data: \u{feff}a\n\n".as_bytes()]).unwrap(),
            ["\u{feff}a"]
        );
    }

    #[test]
    fn unfinished_events_are_not_handed_out() {
        assert_eq!(
            events(&[b"data: a\n\ndata: b\n"]).unwrap(),
            ["a"],
            "an event needs its blank line"
        );
        assert_eq!(events(&[b"data: a"]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error() {
        let bad = [b"data: ok\n\ndata: \xff\xfe\n\n".as_slice()];
        let mut decoder = SseDecoder::default();
        decoder.feed(bad[0]);
        assert_eq!(decoder.next_event().unwrap(), Some("ok"));
        assert!(decoder.next_event().is_err());
        // A character split between chunks is whole once its line is.
        let snowman = "data: \u{2603}\n\n".as_bytes();
        let (a, b) = snowman.split_at(7);
        assert_eq!(events(&[a, b]).unwrap(), ["\u{2603}"]);
    }
}
