//! A minimal HTTP/1.1 client over a raw socket, so tests see the bytes on
//! the wire, chunk boundaries included.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a reply may take before the test fails.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A response as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The chunks as sent, when the body was chunked.
    pub chunks: Option<Vec<Vec<u8>>>,
}

impl Reply {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// The bytes of one request with `connection: close` and a
/// `content-length`.
fn encode(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends one request with `connection: close` and reads the whole reply.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    exchange(addr, &encode(addr, method, path, headers, body)).await
}

/// Sends `request` as is and reads the reply until the server closes.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read reply");
    parse(&raw)
}

/// `GET` with extra headers.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, b"").await
}

/// `POST` of a JSON body.
pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// Blocking variant of [`request`], for threads outside the runtime; an
/// error (not a panic) when the connection fails or closes unanswered.
pub fn blocking_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.write_all(&encode(addr, method, path, headers, body))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::other("connection closed before a reply"));
    }
    Ok(parse(&raw))
}

/// Parses a whole response (head, then the body to the end of `raw`).
pub fn parse(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = std::str::from_utf8(&raw[..end]).expect("ascii head");
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let (body, chunks) = if chunked {
        let chunks = dechunk(rest);
        (chunks.concat(), Some(chunks))
    } else {
        (rest.to_vec(), None)
    };
    Reply {
        status,
        headers,
        body,
        chunks,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&raw[..line_end]).expect("ascii size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return chunks;
        }
        chunks.push(raw[..size].to_vec());
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk terminator");
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chunked_reply_keeping_the_chunks() {
        let reply = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n\
              3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-a"), Some("1"));
        assert_eq!(reply.text(), "abcde");
        assert_eq!(reply.chunks, Some(vec![b"abc".to_vec(), b"de".to_vec()]));
    }

    #[test]
    fn a_plain_body_is_read_to_the_end() {
        let reply = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(reply.status, 404);
        assert_eq!(reply.json(), serde_json::json!({}));
        assert!(reply.chunks.is_none());
    }

    #[test]
    fn encodes_headers_and_length() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let bytes = encode(addr, "PUT", "/x", &[("a", "b")], b"hi");
        assert_eq!(
            bytes,
            b"PUT /x HTTP/1.1\r\nhost: 127.0.0.1:9\r\nconnection: close\r\n\
              content-length: 2\r\na: b\r\n\r\nhi"
        );
    }
}
