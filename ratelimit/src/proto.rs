//! The messages of Envoy's rate limit service protocol, written by hand.
//!
//! Why by hand: the service needs eight small messages, and generating
//! them would mean `protoc` plus Envoy's whole API tree (validate, udpa,
//! core/v3 ...) at build time; neither is on the build machines. Field
//! numbers and types follow Envoy's
//! `api/envoy/service/ratelimit/v3/rls.proto`,
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto` and
//! `api/envoy/type/v3/ratelimit_unit.proto`. Fields the service never
//! reads or writes (headers to add, raw body, dynamic metadata, quotas)
//! are left out: protobuf skips unknown fields on decode.

/// The gRPC service name.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";

/// The path of the one method, `ShouldRateLimit`.
pub const SHOULD_RATE_LIMIT_PATH: &str =
    "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// `envoy.service.ratelimit.v3.RateLimitRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitRequest {
    /// Separates the counters of different applications.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Each one is counted; the request is over limit if any one is.
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// What the request adds to every counter; 0 means 1 (protocol).
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitDescriptor {
    /// The ordered key/value pairs that name the counter.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// The limit to apply, sent by the client (mcp-guard keeps limits in
    /// the policy bundle, not in the service).
    #[prost(message, optional, tag = "2")]
    pub limit: Option<RateLimitOverride>,
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// Descriptor key (non-empty).
    #[prost(string, tag = "1")]
    pub key: String,
    /// Descriptor value (non-empty).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.RateLimitOverride`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitOverride {
    /// Hits allowed per window.
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// The window (`envoy.type.v3.RateLimitUnit`).
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
}

/// `envoy.service.ratelimit.v3.RateLimitResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitResponse {
    /// OVER_LIMIT when any descriptor is over limit, else OK.
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    /// One per request descriptor, in order.
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
}

/// `envoy.service.ratelimit.v3.RateLimitResponse.DescriptorStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DescriptorStatus {
    /// This descriptor's verdict.
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    /// The limit applied (absent when the descriptor had none).
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<RateLimit>,
    /// Hits left in the current window.
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    /// Time until the current window ends.
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<Duration>,
}

/// `envoy.service.ratelimit.v3.RateLimitResponse.RateLimit`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimit {
    /// Hits allowed per window.
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// The window.
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
    /// A name for the limit (debugging aid).
    #[prost(string, tag = "3")]
    pub name: String,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Duration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// The rest, in nanoseconds (0..1e9).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `RateLimitResponse.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    /// Not known.
    Unknown = 0,
    /// Under limit.
    Ok = 1,
    /// Over limit.
    OverLimit = 2,
}

/// `envoy.type.v3.RateLimitUnit` (and `RateLimitResponse.RateLimit.Unit`,
/// which has the same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Unit {
    /// Not known: refused.
    Unknown = 0,
    /// One second.
    Second = 1,
    /// One minute.
    Minute = 2,
    /// One hour.
    Hour = 3,
    /// One UTC day.
    Day = 4,
    /// One UTC calendar month.
    Month = 5,
    /// One UTC calendar year.
    Year = 6,
}
