//! ABI enumerations the hostcalls receive as integers.

/// `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes` buffer kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    HttpRequestBody,
    HttpResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferType {
    /// Parses the ABI value.
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::HttpRequestBody,
            1 => Self::HttpResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Header map kinds of the header hostcalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcReceiveInitialMetadata,
    GrpcReceiveTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    /// Parses the ABI value.
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcReceiveInitialMetadata,
            5 => Self::GrpcReceiveTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_continue_stream` / `proxy_close_stream` stream kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    HttpRequest,
    HttpResponse,
    Downstream,
    Upstream,
}

impl StreamType {
    /// Parses the ABI value.
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::HttpRequest,
            1 => Self::HttpResponse,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}
