//! The incremental engine shared by every mode.
//!
//! It walks trigger positions (digits, `:`, `@`, keyword and custom-term
//! starts) left to right, runs the detectors that apply at each, keeps the
//! longest value found and continues after it. Fed text in pieces, it
//! stops at the first position whose detectors need bytes not yet
//! received, and reports how far the output is final (`commit`): no value
//! can start before it any more. Since detectors read only through a
//! bounded [`Win`], the result does not depend on how the text was cut.
//!
//! A value confirmed by its prefix (a PEM header, a JWT header and dot,
//! `ghp_` and 36 characters…, see `open`) becomes the *open* value: its
//! replacement is recorded at once (an [`Edit`] over the prefix) and each
//! later run extends it with further edits that replace the bytes it
//! swallows by nothing, until its [`Tail`] rule says it ended. While a
//! value is open nothing else is scanned, and `commit` follows the
//! swallowed bytes, so the hold-back does not grow with the value. With
//! the `hash` action the replacement needs the value's bytes: it is
//! rendered when the value ends or reaches [`HASH_PREFIX`] bytes, and
//! a longer value is hashed over its first [`HASH_PREFIX`] bytes.
//!
//! Output is final (`commit`) up to the last space before the scan point:
//! every detector reaches back from its trigger only over adjacent
//! non-space bytes. Look-behind context before that stays in `text`
//! (`keep`) for labels and local parts, but is no longer held back from
//! the output. Only the tail that could still start a keyword waits for
//! more bytes (`Scanner::keyword_tail`).
//!
//! The bytes held back (`end - commit`) are at most [`LOOKBEHIND`] plus
//! the reach of the widest detector (a JWT header, 1 KiB; [`HASH_PREFIX`]
//! with the `hash` action), plus the longest keyword. Should that ever
//! exceed [`MAX_HOLD`], the run stops, commits nothing more and marks
//! the report as overflowed: the caller ends the stream rather than
//! write bytes no detector has cleared.
//!
//! Positions are absolute (`u64`) so long streams never wrap, even on
//! wasm32; `text` holds the not-yet-committed tail starting at `base`.

use aho_corasick::{AhoCorasick, Input};

use super::action::render;
use super::config::{Action, PiiType};
use super::detectors::{aws, card, email, iban, ip, pem, phone, ssn, terms, tokens};
use super::open::{Stop, Tail};
use super::report::PiiReport;
use super::scanner::{Kw, Scanner};
use super::window::{find_trigger, Found, NeedMore, Step, Win};

/// How far back from a trigger a value may start (e-mail local part plus
/// an escape), so how much committed-looking text stays held back.
pub(crate) const LOOKBEHIND: u64 = (email::MAX_LOCAL + 16) as u64;

/// With the `hash` action, an open value is hashed over at most this
/// many bytes (and held back until then).
pub(crate) const HASH_PREFIX: u64 = 4096;

/// Most bytes ever held back undecided: past it the stream overflows.
/// No detector reaches this far (see the module notes); it is the
/// backstop that keeps a detector bug from leaking or growing memory.
pub(crate) const MAX_HOLD: u64 = 8 * 1024;

/// The value being swallowed (see the module notes).
#[derive(Debug, Clone, Copy)]
struct Open {
    tail: Tail,
    ty: PiiType,
    start: u64,
    /// Bytes before this belong to the value.
    pos: u64,
    /// The replacement was recorded (else it waits for `hash` bytes).
    rendered: bool,
}

/// One replacement: `start..end` (absolute) becomes `repl[range]`.
#[derive(Debug, Clone)]
pub(crate) struct Edit {
    pub start: u64,
    pub end: u64,
    pub ty: PiiType,
    pub repl: std::ops::Range<usize>,
    /// Continues the previous edit's value (an open value's later bytes,
    /// replaced by nothing).
    pub cont: bool,
}

/// Where the next keyword (or custom term) match starts, cached between
/// calls so each byte is searched once.
#[derive(Debug, Clone, Copy)]
struct HitCache<T> {
    /// No match starts in `[next, scanned)`.
    scanned: u64,
    /// Absolute start, end, and what matched.
    hit: Option<(u64, u64, T)>,
}

impl<T> Default for HitCache<T> {
    fn default() -> Self {
        Self {
            scanned: 0,
            hit: None,
        }
    }
}

impl<T: Copy> HitCache<T> {
    /// The next match starting in `[from, frontier)`; `search(text, a, b)`
    /// finds the leftmost match starting in `text[a..b]` as relative
    /// `(start, end, what)`.
    fn next(
        &mut self,
        text: &[u8],
        base: u64,
        from: u64,
        frontier: u64,
        search: impl Fn(&[u8], usize, usize) -> Option<(usize, usize, T)>,
    ) -> Option<(u64, u64, T)> {
        if let Some(h) = self.hit {
            if h.0 >= from {
                return Some(h);
            }
            self.hit = None;
        }
        let s = from.max(self.scanned);
        if s >= frontier {
            return None;
        }
        let rel = (s - base) as usize;
        let to = (frontier - base) as usize;
        match search(text, rel, to) {
            Some((start, end, what)) if base + (start as u64) < frontier => {
                let h = (base + start as u64, base + end as u64, what);
                self.hit = Some(h);
                Some(h)
            }
            _ => {
                self.scanned = frontier;
                None
            }
        }
    }
}

/// The leftmost custom term starting in `text[from..to]`.
fn find_term(ac: &AhoCorasick, text: &[u8], from: usize, to: usize) -> Option<(usize, usize, ())> {
    text.get(from..)?;
    let m = ac.find(Input::new(text).span(from..text.len()))?;
    (m.start() < to).then_some((m.start(), m.end(), ()))
}

/// The engine state for one text stream (one body, or one JSON string).
#[derive(Debug, Clone)]
pub(crate) struct Core {
    /// Uncommitted text, starting at absolute position `base`.
    pub text: Vec<u8>,
    pub base: u64,
    floor: u64,
    next: u64,
    trig_scanned: u64,
    kw: HitCache<Kw>,
    term: HitCache<()>,
    /// Try an AWS secret at position 0 (JSON value of a `secret` key).
    pub lead_secret: bool,
    /// The text is the value of a key naming an SSN (JSON mode).
    pub lead_label: bool,
    /// Text mode: honour backslash escapes at value boundaries.
    pub escapes: bool,
    /// Replacements found since the last [`Core::take_edits`].
    pub edits: Vec<Edit>,
    pub repl: Vec<u8>,
    pub report: PiiReport,
    /// Output before this absolute position is final.
    pub commit: u64,
    /// Text before this absolute position is no longer read (at most
    /// `commit`; look-behind keeps it lower than `commit` at times).
    keep: u64,
    open: Option<Open>,
    /// Most bytes held back before overflowing ([`MAX_HOLD`]).
    hold_limit: u64,
}

impl Core {
    pub(crate) fn new(escapes: bool) -> Self {
        Self {
            text: Vec::new(),
            base: 0,
            floor: 0,
            next: 0,
            trig_scanned: 0,
            kw: HitCache::default(),
            term: HitCache::default(),
            lead_secret: false,
            lead_label: false,
            escapes,
            edits: Vec::new(),
            repl: Vec::new(),
            report: PiiReport::default(),
            commit: 0,
            keep: 0,
            open: None,
            hold_limit: MAX_HOLD,
        }
    }

    /// Starts a new, independent text (keeps the report).
    /// Reuses the buffers: JSON mode resets once per string value.
    pub(crate) fn reset(&mut self) {
        self.text.clear();
        self.edits.clear();
        self.repl.clear();
        self.base = 0;
        self.floor = 0;
        self.next = 0;
        self.trig_scanned = 0;
        self.kw = HitCache::default();
        self.term = HitCache::default();
        self.lead_secret = false;
        self.lead_label = false;
        self.commit = 0;
        self.keep = 0;
        self.open = None;
    }

    /// Absolute end of the received text.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.text.len() as u64
    }

    /// Just past the last space, tab, CR or LF in `from..to` (absolute),
    /// or `from` when there is none.
    fn after_last_space(&self, from: u64, to: u64) -> u64 {
        let lo = from.saturating_sub(self.base) as usize;
        let hi = (to.saturating_sub(self.base) as usize).min(self.text.len());
        self.text
            .get(lo..hi)
            .and_then(|t| {
                t.iter()
                    .rposition(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            })
            .map_or(from, |i| from + i as u64 + 1)
    }

    /// Drops text before `upto` (at most `commit`, and never text a later
    /// run still reads for look-behind).
    pub(crate) fn compact(&mut self, upto: u64) {
        let upto = upto.min(self.commit).min(self.keep).min(self.end());
        if upto > self.base {
            self.text.drain(..(upto - self.base) as usize);
            self.base = upto;
        }
    }

    /// Forgets edits already written out.
    pub(crate) fn clear_edits(&mut self) {
        self.edits.clear();
        self.repl.clear();
    }

    /// Scans as far as the received text allows; `eof` says no more will
    /// come. Appends to `edits` and advances `commit`.
    pub(crate) fn run(&mut self, sc: &Scanner, eof: bool) {
        let end = self.end();
        let frontier = if eof {
            end
        } else {
            end - sc.keyword_tail(&self.text) as u64
        };
        if self.lead_secret && self.next == 0 {
            if !sc.enabled(PiiType::AwsSecret) {
                self.lead_secret = false;
            } else {
                let w = Win::new(&self.text, 0, eof, self.escapes);
                match aws::secret_after(&w, 0) {
                    Err(NeedMore) => return,
                    Ok(Some((s, e))) => {
                        self.lead_secret = false;
                        self.apply(sc, 0, Found::new(s, e, PiiType::AwsSecret));
                    }
                    Ok(None) => self.lead_secret = false,
                }
            }
        }
        loop {
            if self.open.is_some() && !self.extend_open(sc, eof) {
                break;
            }
            if self.next >= frontier {
                break;
            }
            let Some((p, kw, term)) = self.candidate(sc, frontier) else {
                self.next = frontier;
                break;
            };
            let rel = (p - self.base) as usize;
            let lo = self
                .floor
                .max(p.saturating_sub(LOOKBEHIND))
                .saturating_sub(self.base) as usize;
            let mut w = Win::new(&self.text, lo, eof, self.escapes);
            // Relative 0 is the value's start only before any compaction.
            w.lead_label = self.lead_label && self.base == 0;
            match evaluate(sc, &w, rel, kw, term) {
                Err(NeedMore) => {
                    self.next = p;
                    break;
                }
                Ok(Some(f)) if f.start >= lo && f.start < f.end && f.end <= self.text.len() => {
                    self.apply(sc, p, f);
                }
                Ok(_) => self.next = p + 1,
            }
        }
        let commit = match self.open {
            Some(o) if o.rendered => o.pos,
            Some(o) => o.start,
            None if eof && self.next >= end => end,
            None => {
                // Look-behind context stays in `text` for later runs…
                self.keep = self.floor.max(self.next.saturating_sub(LOOKBEHIND));
                // …but the output is final up to the last whitespace
                // before `next`: every detector's value reaches back from
                // its trigger only over adjacent non-space bytes (local
                // part, `+`/`(`, hex digits, IBAN letters), so no value
                // still to be found starts before it.
                self.keep.max(self.after_last_space(self.keep, self.next))
            }
        };
        if self.open.is_some() || eof {
            self.keep = commit;
        }
        self.commit = commit.clamp(self.commit, end);
        if !eof && end - self.commit > self.hold_limit {
            self.report.record_overflow();
        }
    }

    /// Swallows what arrived of the open value; `true` once it ended.
    /// Kept out of line: the scan loop around it is the hot path.
    #[cold]
    #[inline(never)]
    fn extend_open(&mut self, sc: &Scanner, eof: bool) -> bool {
        let Some(mut o) = self.open else {
            return true;
        };
        let base = self.base;
        // Once rendered, the value's start may already be compacted away.
        let lo = (o.start.max(base) - base) as usize;
        let w = Win::new(&self.text, lo, eof, self.escapes);
        let (stop, ended) = match o.tail.advance(&w, (o.pos - base) as usize) {
            Stop::End(i) => (i, true),
            Stop::More(i) => (i, false),
        };
        let pos = base + stop as u64;
        if !o.rendered {
            if ended || pos - o.start >= HASH_PREFIX {
                let upto = pos.min(o.start + HASH_PREFIX);
                self.push_edit(sc, o.ty, o.start, pos, Some(upto));
                o.rendered = true;
            }
        } else if pos > o.pos {
            self.push_edit(sc, o.ty, o.pos, pos, None);
        }
        o.pos = pos;
        if ended {
            self.open = None;
            self.floor = pos;
            self.next = self.next.max(pos);
        } else {
            self.open = Some(o);
        }
        ended
    }

    /// Records the replacement of `start..end`: rendered from the bytes
    /// `start..upto`, or nothing (`None`: the value's earlier edit
    /// already carries its replacement).
    fn push_edit(&mut self, sc: &Scanner, ty: PiiType, start: u64, end: u64, upto: Option<u64>) {
        let r0 = self.repl.len();
        if let Some(upto) = upto {
            let a = (start - self.base) as usize;
            let b = (upto - self.base) as usize;
            render(sc, ty, self.text.get(a..b).unwrap_or(&[]), &mut self.repl);
        }
        self.edits.push(Edit {
            start,
            end,
            ty,
            repl: r0..self.repl.len(),
            cont: upto.is_none(),
        });
    }

    /// The next trigger position at or after `next` and before `frontier`.
    fn candidate(
        &mut self,
        sc: &Scanner,
        frontier: u64,
    ) -> Option<(u64, Option<Kw>, Option<usize>)> {
        let base = self.base;
        let mut best: Option<u64> = None;
        if sc.triggers {
            let from = self.next.max(self.trig_scanned);
            let hit = find_trigger(
                &self.text,
                (from - base) as usize,
                (frontier - base) as usize,
            )
            .map(|i| base + i as u64);
            if hit.is_none() {
                self.trig_scanned = frontier;
            }
            best = hit;
        }
        let kw = sc.keywords.as_ref().and_then(|k| {
            self.kw
                .next(&self.text, base, self.next, frontier, |t, a, b| {
                    k.find(t, a, b).map(|h| (h.start, h.end, h.kind))
                })
        });
        let term = sc.terms.as_ref().and_then(|ac| {
            self.term
                .next(&self.text, base, self.next, frontier, |t, a, b| {
                    find_term(ac, t, a, b)
                })
        });
        for s in [kw.map(|k| k.0), term.map(|t| t.0)].into_iter().flatten() {
            best = Some(best.map_or(s, |b| b.min(s)));
        }
        let p = best?;
        let kw = kw.filter(|k| k.0 == p).map(|k| k.2);
        let term = term.filter(|t| t.0 == p).map(|t| (t.1 - t.0) as usize);
        Some((p, kw, term))
    }

    /// Records `f` (and its companion) as replacements, moves past them.
    fn apply(&mut self, sc: &Scanner, p: u64, f: Found) {
        if let Some(tail) = f.open {
            self.open_value(sc, p, f, tail);
            return;
        }
        let mut spans = [(f.start, f.end, f.ty), (0, 0, f.ty)];
        let mut n = 1;
        if let Some(extra) = f.extra {
            spans[1] = extra;
            n = 2;
        }
        let mut last_end = None;
        for &(s, e, ty) in spans.iter().take(n) {
            if !sc.enabled(ty) || e <= s || e > self.text.len() {
                continue;
            }
            let start = self.base + s as u64;
            if start < self.floor {
                continue;
            }
            let r0 = self.repl.len();
            render(sc, ty, self.text.get(s..e).unwrap_or(&[]), &mut self.repl);
            self.edits.push(Edit {
                start,
                end: self.base + e as u64,
                ty,
                repl: r0..self.repl.len(),
                cont: false,
            });
            self.report.record(ty, sc.action(ty) == Action::Block);
            self.floor = self.base + e as u64;
            last_end = Some(self.floor);
        }
        self.next = match last_end {
            Some(e) => e.max(p + 1),
            None => p + 1,
        };
    }
}

impl Core {
    /// Starts swallowing a value confirmed by its prefix `f.start..f.end`.
    #[cold]
    #[inline(never)]
    fn open_value(&mut self, sc: &Scanner, p: u64, f: Found, tail: Tail) {
        let start = self.base + f.start as u64;
        let end = self.base + f.end as u64;
        self.next = p + 1;
        if !sc.enabled(f.ty) || start < self.floor {
            return;
        }
        self.report.record(f.ty, sc.action(f.ty) == Action::Block);
        let rendered = sc.action(f.ty) != Action::Hash;
        if rendered {
            self.push_edit(sc, f.ty, start, end, Some(end));
        }
        self.open = Some(Open {
            tail,
            ty: f.ty,
            start,
            pos: end,
            rendered,
        });
    }

    /// Lowers the hold-back limit, to exercise the overflow in tests.
    #[cfg(test)]
    pub(crate) fn set_hold_limit(&mut self, limit: u64) {
        self.hold_limit = limit;
    }
}

/// Runs every detector that applies at `p`; the longest value wins, and
/// a value confirmed by its prefix (open) beats any complete one.
fn evaluate(
    sc: &Scanner,
    w: &Win,
    p: usize,
    kw: Option<Kw>,
    term: Option<usize>,
) -> Step<Option<Found>> {
    let mut best: Option<Found> = None;
    let mut need = false;
    let mut consider = |r: Step<Option<Found>>| match r {
        Err(NeedMore) => need = true,
        Ok(Some(f)) => {
            let rank = |x: &Found| (x.open.is_some(), x.end - x.start);
            if best.is_none_or(|b| rank(&f) > rank(&b)) {
                best = Some(f);
            }
        }
        Ok(None) => {}
    };
    let on = |t: PiiType| sc.enabled(t);
    let b = w.at(p).ok().flatten().unwrap_or(0);
    if b.is_ascii_digit() && !w.before(p).is_some_and(|c| c.is_ascii_digit()) {
        // On equal length the first wins: the stricter formats go first.
        if on(PiiType::Card) {
            consider(card::detect(w, p));
        }
        if on(PiiType::Ssn) {
            consider(ssn::detect(w, p));
        }
        if on(PiiType::Phone) {
            consider(phone::detect(w, p));
        }
        if on(PiiType::Ip) {
            consider(ip::detect_v4(w, p));
        }
        if on(PiiType::Iban) {
            consider(iban::detect(w, p));
        }
    }
    if b == b'@' && on(PiiType::Email) {
        consider(email::detect(w, p));
    }
    if b == b':' && on(PiiType::Ip) {
        consider(ip::detect_v6(w, p));
    }
    if let Some(kw) = kw {
        consider(match kw {
            Kw::AwsKeyId => aws::detect_key_id(w, p, on(PiiType::AwsSecret)),
            Kw::Secret => aws::detect_secret(w, p + 6),
            Kw::Github => tokens::github(w, p),
            Kw::GithubPat => tokens::github_pat(w, p),
            Kw::Slack => tokens::slack(w, p),
            Kw::Stripe => tokens::stripe(w, p),
            Kw::Google => tokens::google(w, p),
            Kw::Jwt => tokens::jwt(w, p),
            Kw::Bearer => tokens::bearer(w, p),
            Kw::Pem => pem::detect(w, p),
        });
    }
    if let Some(len) = term {
        consider(terms::detect(w, p, p + len));
    }
    if need {
        Err(NeedMore)
    } else {
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the backstop lowered below a detector's reach (a JWT header
    /// of ~900 bytes), the run overflows and never commits past the
    /// undecided trigger.
    #[test]
    fn hold_limit_overflows_without_committing_undecided_bytes() {
        let sc = Scanner::default();
        let mut core = Core::new(false);
        core.set_hold_limit(200);
        let text = format!("start eyJ{}", "A".repeat(900));
        for b in text.as_bytes().chunks(3) {
            core.text.extend_from_slice(b);
            core.run(&sc, false);
        }
        assert!(core.report.overflowed());
        assert!(core.commit <= 6, "committed {}", core.commit);
        assert!(core.edits.is_empty());
    }

    /// An open value's edits: the marker over the confirmed prefix, then
    /// continuations replaced by nothing; `commit` follows the value.
    #[test]
    fn open_values_commit_as_they_are_swallowed() {
        let sc = Scanner::default();
        let mut core = Core::new(false);
        core.text
            .extend_from_slice(b"k -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE");
        core.run(&sc, false);
        assert!(!core.edits[0].cont);
        assert_eq!(core.edits[0].start, 2);
        assert_eq!(core.commit, core.end());
        core.text
            .extend_from_slice(b"IIrYSSNQ\n-----END EC PRIVATE KEY----- ok");
        core.run(&sc, false);
        assert!(core
            .edits
            .iter()
            .skip(1)
            .all(|e| e.cont && e.repl.is_empty()));
        assert_eq!(core.edits.last().map(|e| e.end), Some(core.end() - 3));
        assert!(core.open.is_none());
        assert_eq!(core.report.count(PiiType::PrivateKey), 1);
    }
}
