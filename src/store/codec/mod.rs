//! Chunk codec: how series of beats, observations and status samples become bytes.
//!
//! Beats and observations are both *spans*: a start time, an end time, a beat number and
//! an outcome. A chunk of spans is stored column by column, each value as a residual from
//! a prediction (the chunk's median step and duration, the previous beat number plus one),
//! zig-zag mapped and Rice coded with the best parameter for that column. A steady 10 Hz
//! series costs about two bytes per span. The envelope around the bit stream, and status
//! chunks, are postcard. `docs/store-format.md` describes the layout byte by byte.

mod bits;
mod checksum;
mod packed;
mod spans;
mod status;

pub use checksum::{CHECKSUM_BYTES, checked, with_checksum};
pub use packed::{PackedSpans, PackedStatus};
pub use spans::{
    Span, SpanChunk, decode_spans, decode_spans_each, decode_spans_into, encode_spans,
};
pub use status::{status_from_bytes, status_to_bytes};

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt chunk: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn corrupt(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}
