//! Data classification of a request body (the prompt): which kinds of
//! personal data it holds, for the `prompt_pii` condition of access rules
//! and routes.
//!
//! Found with the response scanner's detectors, but by a scanner of its
//! own: one that detects exactly the types some condition names (whatever
//! the bundle's `pii` section scrubs) and only counts. JSON bodies are
//! read as JSON (string values with their escapes decoded, so a card
//! number written `\u0034111…` or split across escapes is still found);
//! anything else as text.

use std::sync::Arc;

use crate::pii::{Action, PiiConfig, PiiConfigError, PiiType, Scanner};

/// A set of PII types found in one body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PiiSet(u16);

impl PiiSet {
    /// Whether `ty` was found.
    pub fn contains(self, ty: PiiType) -> bool {
        self.0 & (1 << ty.index()) != 0
    }

    /// Adds one type.
    pub fn insert(&mut self, ty: PiiType) {
        self.0 |= 1 << ty.index();
    }

    /// Whether nothing was found.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types, in [`PiiType::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = PiiType> {
        PiiType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

/// Classifies prompts for the types the bundle's conditions name.
#[derive(Debug, Clone)]
pub struct PromptClassifier {
    scanner: Arc<Scanner>,
}

impl PromptClassifier {
    /// A classifier for `types` (`custom` matches the bundle's
    /// `pii.custom_terms`). `None` when no condition names a type.
    pub fn new(types: &[PiiType], custom_terms: &[String]) -> Result<Option<Self>, PiiConfigError> {
        if types.is_empty() {
            return Ok(None);
        }
        let mut enabled = types.to_vec();
        enabled.sort();
        enabled.dedup();
        let config = PiiConfig {
            enabled,
            default_action: Action::Mask,
            actions: Default::default(),
            custom_terms: if types.contains(&PiiType::Custom) {
                custom_terms.to_vec()
            } else {
                Vec::new()
            },
            hash_key: None,
        };
        Ok(Some(Self {
            scanner: Arc::new(Scanner::new(&config)?),
        }))
    }

    /// The types found in `body`. A body that opens like JSON (object or
    /// array, after whitespace) is read as JSON, any other as text.
    pub fn classify(&self, body: &[u8]) -> PiiSet {
        let mut found = PiiSet::default();
        if body.is_empty() {
            return found;
        }
        let mut out = Vec::with_capacity(body.len());
        let json = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| matches!(b, b'{' | b'['));
        let report = if json {
            self.scanner.scrub_json(body, &mut out)
        } else {
            self.scanner.scrub_text(body, &mut out)
        };
        for (ty, _) in report.iter() {
            found.insert(ty);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards() -> PromptClassifier {
        PromptClassifier::new(&[PiiType::Card], &[])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn finds_a_card_in_a_prompt_and_nothing_it_was_not_asked_for() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"pay with 4111 1111 1111 1111 or mail a@b.example"}]}"#;
        let found = cards().classify(body);
        assert!(found.contains(PiiType::Card));
        assert!(
            !found.contains(PiiType::Email),
            "only named types are detected"
        );
        assert!(cards().classify(br#"{"content":"hello"}"#).is_empty());
    }

    #[test]
    fn escapes_do_not_hide_a_card() {
        // `4111…` with its digits written as JSON unicode escapes.
        let body = br#"{"content":"card \u0034\u003111111111111111 please"}"#;
        assert!(cards().classify(body).contains(PiiType::Card));
        // Text bodies are scanned as text.
        assert!(cards()
            .classify(b"card 4111-1111-1111-1111")
            .contains(PiiType::Card));
    }

    #[test]
    fn custom_terms_only_when_named() {
        let c = PromptClassifier::new(&[PiiType::Custom], &["project zeus".into()])
            .unwrap()
            .unwrap();
        assert!(c
            .classify(br#"{"q":"tell me about Project Zeus"}"#)
            .contains(PiiType::Custom));
        assert!(PromptClassifier::new(&[], &[]).unwrap().is_none());
    }
}
