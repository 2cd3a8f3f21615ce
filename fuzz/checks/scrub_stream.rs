//! `scrub_stream`: streamed scrubbing equals whole-body scrubbing.
//!
//! Input: a mode byte (text, JSON, SSE, SSE with small bounds), a count
//! and list of chunk sizes (cycled), then the body.
//!
//! Invariants: no panic; text and JSON streams give exactly the output and
//! report of `Scanner::scrub_text` / `scrub_json` on the whole body; an
//! SSE stream gives the output of the same scrubber fed the whole body at
//! once, unless one of them refused (`error()`), which is allowed to
//! depend on the chunking; after a refusal nothing more is written.

use std::sync::Arc;

use mcp_guard_engine::pii::{
    Action, ContentMode, PiiConfig, PiiReport, PiiType, Scanner, SseLimits, StreamScrubber,
};

use super::Input;

fn scanner() -> Arc<Scanner> {
    let cfg = PiiConfig {
        custom_terms: vec!["acme".into(), "Project Blue".into()],
        actions: [
            (PiiType::Card, Action::Partial),
            (PiiType::Email, Action::Hash),
        ]
        .into_iter()
        .collect(),
        hash_key: Some("0123456789abcdef0123".into()),
        ..PiiConfig::default()
    };
    Arc::new(Scanner::new(&cfg).expect("fixed scanner config"))
}

thread_local! {
    static SCANNER: Arc<Scanner> = scanner();
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Text,
    Json,
    Sse,
    SseSmall,
}

const SMALL: SseLimits = SseLimits {
    max_event_bytes: 512,
    max_fields: 3,
    max_held_bytes: 1024,
};

fn scrubber(sc: &Arc<Scanner>, mode: Mode) -> StreamScrubber {
    match mode {
        Mode::Text => StreamScrubber::new(Arc::clone(sc), ContentMode::Text),
        Mode::Json => StreamScrubber::new(Arc::clone(sc), ContentMode::Json),
        Mode::Sse => StreamScrubber::new(Arc::clone(sc), ContentMode::Sse),
        Mode::SseSmall => StreamScrubber::sse_with_limits(Arc::clone(sc), SMALL),
    }
}

/// Feeds `chunks`; checks that nothing is written once refused.
fn run(mut s: StreamScrubber, chunks: &[&[u8]]) -> (Vec<u8>, PiiReport, bool) {
    let mut out = Vec::new();
    let mut refused = false;
    for chunk in chunks {
        let before = out.len();
        s.push(chunk, &mut out);
        if refused {
            assert_eq!(out.len(), before, "written after the refusal");
        }
        refused = s.error().is_some();
    }
    let before = out.len();
    s.finish(&mut out);
    if refused {
        assert_eq!(out.len(), before, "finish wrote after the refusal");
    }
    (out, s.report(), s.error().is_some())
}

/// Splits `body` by the sizes in `sizes`, cycled (0 means an empty chunk).
pub fn split<'a>(body: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if sizes.is_empty() {
            rest.len()
        } else {
            usize::from(sizes[i % sizes.len()])
        };
        i += 1;
        let (a, b) = rest.split_at(n.min(rest.len()));
        chunks.push(a);
        rest = b;
        if i > 100_000 {
            chunks.push(rest);
            break;
        }
    }
    chunks
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.pick(&[Mode::Text, Mode::Json, Mode::Sse, Mode::SseSmall]);
    let n = usize::from(input.u8() % 16);
    let sizes = input.take(n);
    let body = input.rest();
    let chunks = split(body, sizes);
    SCANNER.with(|sc| {
        let (streamed, report, refused) = run(scrubber(sc, mode), &chunks);
        match mode {
            Mode::Text | Mode::Json => {
                let mut want = Vec::new();
                let want_report = match mode {
                    Mode::Json => sc.scrub_json(body, &mut want),
                    _ => sc.scrub_text(body, &mut want),
                };
                assert!(!refused);
                assert!(
                    streamed == want,
                    "{mode:?}: streamed differs from buffered\n streamed {:?}\n buffered {:?}",
                    String::from_utf8_lossy(&streamed),
                    String::from_utf8_lossy(&want)
                );
                assert_eq!(report, want_report, "{mode:?}: reports differ");
            }
            Mode::Sse | Mode::SseSmall => {
                let (whole, whole_report, whole_refused) = run(scrubber(sc, mode), &[body]);
                if !refused && !whole_refused {
                    assert!(
                        streamed == whole,
                        "{mode:?}: streamed differs from whole\n streamed {:?}\n whole    {:?}",
                        String::from_utf8_lossy(&streamed),
                        String::from_utf8_lossy(&whole)
                    );
                    assert_eq!(report, whole_report, "{mode:?}: reports differ");
                }
            }
        }
    });
}
