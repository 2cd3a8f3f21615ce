//! A minimal HTTP/1.1 reader over a blocking socket, shared by the paced
//! latency client and the streaming upstream: enough for keep-alive
//! exchanges with `content-length` or chunked bodies, and for noting when
//! the first body byte arrived (time to first byte of a stream).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// One parsed request or response.
#[derive(Debug, Default, Clone)]
pub struct Message {
    /// `POST /x HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start_line: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// When the first body byte was in hand (None for an empty body).
    pub first_body_byte: Option<Instant>,
}

impl Message {
    /// The status code of a response (0 when the line is not a status line).
    pub fn status(&self) -> u16 {
        self.start_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The request path of a request line.
    pub fn path(&self) -> &str {
        self.start_line.split_whitespace().nth(1).unwrap_or("")
    }

    /// First value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A buffered connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Conn {
    /// Wraps a connected socket (Nagle off: requests and events are small).
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16) -> io::Result<Self> {
        Self::new(TcpStream::connect(("127.0.0.1", port))?)
    }

    /// Writes all bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads more bytes into the buffer; false at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n > 0)
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..at + 2).take(at).collect();
                return String::from_utf8(line).map_err(|_| bad("non-UTF-8 header line"));
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Takes exactly `n` bytes.
    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Waits until at least one byte is buffered; notes the time.
    fn first_byte(&mut self, first: &mut Option<Instant>) -> io::Result<()> {
        if first.is_none() {
            while self.buf.is_empty() {
                if !self.fill()? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            *first = Some(Instant::now());
        }
        Ok(())
    }

    /// Reads one message (request or response); `Ok(None)` when the peer
    /// closed the connection cleanly before a new message began.
    pub fn read_message(&mut self) -> io::Result<Option<Message>> {
        if self.buf.is_empty() && !self.fill()? {
            return Ok(None);
        }
        let mut msg = Message {
            start_line: self.line()?,
            ..Message::default()
        };
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| bad("header line"))?;
            msg.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let chunked = msg
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let size_line = self.line()?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| bad("chunk size"))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                self.first_byte(&mut msg.first_body_byte)?;
                let data = self.exact(size)?;
                msg.body.extend_from_slice(&data);
                if !self.line()?.is_empty() {
                    return Err(bad("chunk not followed by CRLF"));
                }
            }
        } else if let Some(len) = msg.header("content-length") {
            let len: usize = len.parse().map_err(|_| bad("content-length"))?;
            if len > 0 {
                self.first_byte(&mut msg.first_body_byte)?;
                msg.body = self.exact(len)?;
            }
        }
        Ok(Some(msg))
    }
}

/// A keep-alive POST request with a JSON body.
pub fn post(path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
