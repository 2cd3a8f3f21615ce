//! Envoy's rate-limit service protocol (`envoy.service.ratelimit.v3`,
//! `RateLimitService/ShouldRateLimit`): the request the filter sends for
//! `store: global` limits and the answer it reads, as gRPC unary frames.
//!
//! Hand-written on purpose: the filter is a size-critical wasm module
//! and needs four small messages; a protobuf crate with generated code
//! would cost more than the whole codec. Field numbers follow
//! `api/envoy/service/ratelimit/v3/rls.proto` and
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto`:
//!
//! - `RateLimitRequest { string domain = 1; repeated RateLimitDescriptor
//!   descriptors = 2; uint32 hits_addend = 3; }`
//! - `RateLimitDescriptor { repeated Entry entries = 1 { string key = 1;
//!   string value = 2; } RateLimitOverride limit = 2 { uint32
//!   requests_per_unit = 1; RateLimitUnit unit = 2; } }`
//! - `RateLimitResponse { Code overall_code = 1; repeated DescriptorStatus
//!   statuses = 2; ... }`, `DescriptorStatus { Code code = 1; RateLimit
//!   current_limit = 2; uint32 limit_remaining = 3; Duration
//!   duration_until_reset = 4; }`, `Duration { int64 seconds = 1; ... }`.
//!
//! The decoder skips fields it does not know (as protobuf requires),
//! refuses truncated or malformed input, and bounds what it keeps.

use super::Per;

/// The gRPC method path.
pub const PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// Largest answer read (statuses for at most [`super::MAX_LIMITS`]
/// descriptors are a few kilobytes).
pub const MAX_ANSWER: usize = 64 * 1024;

/// One descriptor of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// (key, value) entries; neither may be empty (the service refuses
    /// empty ones).
    pub entries: Vec<(String, String)>,
    /// The limit override: requests per unit, and the unit.
    pub limit: Option<(u32, Per)>,
}

/// `RateLimitResponse.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Not known (0, or a value this codec does not know).
    Unknown,
    /// Under the limit.
    Ok,
    /// Over the limit.
    OverLimit,
}

impl Code {
    fn of(v: u64) -> Self {
        match v {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// One `DescriptorStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The descriptor's code.
    pub code: Code,
    /// `current_limit.requests_per_unit`, when sent.
    pub limit: Option<u32>,
    /// `limit_remaining`.
    pub remaining: u32,
    /// `duration_until_reset.seconds`, when sent.
    pub reset_secs: Option<u64>,
}

/// A decoded `RateLimitResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The overall code.
    pub overall: Code,
    /// One status per descriptor sent (the service's order).
    pub statuses: Vec<Status>,
}

/// Why an answer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not one whole uncompressed gRPC frame.
    #[error("not one uncompressed gRPC message")]
    Frame,
    /// A varint, length or wire type is broken.
    #[error("malformed protobuf")]
    Malformed,
    /// Larger than [`MAX_ANSWER`].
    #[error("answer too large")]
    TooLarge,
}

fn unit(per: Per) -> u64 {
    match per {
        Per::Second => 1,
        Per::Minute => 2,
        Per::Hour => 3,
        Per::Day => 4,
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

/// The gRPC frame (uncompressed, 4-byte big-endian length) of a
/// `RateLimitRequest`. `hits_addend` 0 is left out (the service reads
/// an absent one as 1).
pub fn encode_request(domain: &str, descriptors: &[Descriptor], hits_addend: u32) -> Vec<u8> {
    let mut msg = Vec::with_capacity(128);
    bytes_field(&mut msg, 1, domain.as_bytes());
    let mut d = Vec::with_capacity(96);
    let mut e = Vec::with_capacity(48);
    for descriptor in descriptors {
        d.clear();
        for (key, value) in &descriptor.entries {
            e.clear();
            bytes_field(&mut e, 1, key.as_bytes());
            bytes_field(&mut e, 2, value.as_bytes());
            bytes_field(&mut d, 1, &e);
        }
        if let Some((per_unit, per)) = descriptor.limit {
            e.clear();
            varint_field(&mut e, 1, u64::from(per_unit));
            varint_field(&mut e, 2, unit(per));
            bytes_field(&mut d, 2, &e);
        }
        bytes_field(&mut msg, 2, &d);
    }
    if hits_addend > 0 {
        varint_field(&mut msg, 3, u64::from(hits_addend));
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0);
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// A protobuf reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
}

/// One field value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Malformed)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Malformed)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Malformed)?;
        if n > self.buf.len() {
            return Err(DecodeError::Malformed);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value), `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(DecodeError::Malformed);
        }
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Other
            }
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Other
            }
            // Groups (3, 4) and unknown wire types: not in these messages.
            _ => return Err(DecodeError::Malformed),
        };
        Ok(Some((field, value)))
    }
}

fn decode_status(buf: &[u8]) -> Result<Status, DecodeError> {
    let mut r = Reader { buf };
    let mut s = Status {
        code: Code::Unknown,
        limit: None,
        remaining: 0,
        reset_secs: None,
    };
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (1, Field::Varint(v)) => s.code = Code::of(v),
            (2, Field::Bytes(b)) => {
                let mut l = Reader { buf: b };
                while let Some((f, v)) = l.next()? {
                    if let (1, Field::Varint(n)) = (f, v) {
                        s.limit = Some(u32::try_from(n).unwrap_or(u32::MAX));
                    }
                }
            }
            (3, Field::Varint(v)) => s.remaining = u32::try_from(v).unwrap_or(u32::MAX),
            (4, Field::Bytes(b)) => {
                let mut d = Reader { buf: b };
                let mut secs = 0u64;
                while let Some((f, v)) = d.next()? {
                    if let (1, Field::Varint(n)) = (f, v) {
                        // int64: a negative duration is no time at all.
                        secs = if (n as i64) < 0 { 0 } else { n };
                    }
                }
                s.reset_secs = Some(secs);
            }
            (1 | 3, _) | (2 | 4, Field::Varint(_)) => return Err(DecodeError::Malformed),
            _ => {}
        }
    }
    Ok(s)
}

/// Reads one gRPC frame holding a `RateLimitResponse`.
pub fn decode_answer(frame: &[u8]) -> Result<Answer, DecodeError> {
    if frame.len() > MAX_ANSWER + 5 {
        return Err(DecodeError::TooLarge);
    }
    let (head, msg) = frame.split_at_checked(5).ok_or(DecodeError::Frame)?;
    let [0, a, b, c, d] = *head else {
        return Err(DecodeError::Frame);
    };
    if u32::from_be_bytes([a, b, c, d]) as usize != msg.len() {
        return Err(DecodeError::Frame);
    }
    let mut r = Reader { buf: msg };
    let mut answer = Answer {
        overall: Code::Unknown,
        statuses: Vec::new(),
    };
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (1, Field::Varint(v)) => answer.overall = Code::of(v),
            (2, Field::Bytes(b)) => {
                if answer.statuses.len() >= super::MAX_LIMITS {
                    return Err(DecodeError::TooLarge);
                }
                answer.statuses.push(decode_status(b)?);
            }
            (1, _) | (2, Field::Varint(_)) => return Err(DecodeError::Malformed),
            _ => {}
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn request_bytes_are_the_protobuf_encoding() {
        let frame = encode_request(
            "d",
            &[Descriptor {
                entries: vec![("limit".into(), "a".into())],
                limit: Some((300, Per::Minute)),
            }],
            7,
        );
        // domain "d"; descriptor { entry {key "limit" value "a"} limit {300, MINUTE} }; hits 7
        let msg: &[u8] = &[
            0x0a, 1, b'd', //
            0x12, 19, //
            0x0a, 10, 0x0a, 5, b'l', b'i', b'm', b'i', b't', 0x12, 1, b'a', //
            0x12, 5, 0x08, 0xac, 0x02, 0x10, 2, //
            0x18, 7,
        ];
        assert_eq!(&frame[..5], &[0, 0, 0, 0, msg.len() as u8]);
        assert_eq!(&frame[5..], msg);
        // hits 0 is not sent (the protocol reads it as 1).
        let no_hits = encode_request("d", &[], 0);
        assert_eq!(&no_hits[5..], &[0x0a, 1, b'd']);
    }

    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    }

    #[test]
    fn answers_decode_and_skip_unknown_fields() {
        // overall OVER_LIMIT; status {code 2, current_limit {rpu 5, unit 1,
        // name "x"}, remaining 0, reset {seconds 12, nanos 5}}; raw_body "zz";
        // an unknown fixed64 field 9.
        let msg = [
            0x08, 2, //
            0x12, 19, 0x08, 2, 0x12, 7, 0x08, 5, 0x10, 1, 0x1a, 1, b'x', 0x18, 0, 0x22, 4, 0x08,
            12, 0x10, 5, //
            0x2a, 2, b'z', b'z', //
            0x49, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let a = decode_answer(&frame(&msg)).unwrap();
        assert_eq!(a.overall, Code::OverLimit);
        assert_eq!(
            a.statuses,
            vec![Status {
                code: Code::OverLimit,
                limit: Some(5),
                remaining: 0,
                reset_secs: Some(12)
            }]
        );
        assert_eq!(decode_answer(&frame(&[0x08, 1])).unwrap().overall, Code::Ok);
        assert_eq!(decode_answer(&frame(&[])).unwrap().overall, Code::Unknown);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode_answer(b""), Err(DecodeError::Frame));
        assert_eq!(decode_answer(&[1, 0, 0, 0, 0]), Err(DecodeError::Frame));
        assert_eq!(decode_answer(&[0, 0, 0, 0, 5, 8]), Err(DecodeError::Frame));
        for bad in [
            &[0x08][..],
            &[0x12, 5, 1],
            &[0x0a, 1, 1],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
            ],
            &[0x0b],
            &[0x00, 1],
            &[0x12, 2, 0x08],
        ] {
            assert!(decode_answer(&frame(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(
            decode_answer(&vec![0u8; MAX_ANSWER + 6]),
            Err(DecodeError::TooLarge)
        );
        // Every prefix of a valid answer is either refused or decodes.
        let msg = [0x08, 2, 0x12, 4, 0x08, 2, 0x18, 3];
        for n in 0..msg.len() {
            let _ = decode_answer(&frame(&msg[..n]));
        }
    }
}
