//! ABI tests: the host driven against small WAT guests, one behaviour each.

mod abi {
    pub mod bodies;
    pub mod guest;
    pub mod headers;
    pub mod http_calls;
    pub mod lifecycle;
    pub mod local_reply;
    pub mod misc;
    pub mod properties;
    pub mod replay;
    pub mod safety;
    pub mod trailers;
}
