//! Documents and their labels, and the builder genres write them with.

use mcp_guard_engine::pii::PiiType;
use serde::{Deserialize, Serialize};

/// The kind of text a document imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Genre {
    /// Assistant answers: prose, markdown lists and tables.
    Chat,
    /// JSON API payloads, compact or pretty, with escapes.
    Json,
    /// Server and access logs.
    Log,
    /// Code snippets and configuration files.
    Code,
    /// Text full of look-alikes that must not be flagged.
    Negative,
}

impl Genre {
    /// Every genre, in generation rotation order.
    pub const ALL: [Genre; 5] = [
        Genre::Chat,
        Genre::Json,
        Genre::Log,
        Genre::Code,
        Genre::Negative,
    ];
}

/// One sensitive value placed in a document: `text[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// What the value is.
    pub ty: PiiType,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
}

/// A generated document with the exact spans of every value in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Position in the corpus.
    pub id: usize,
    /// What the document imitates.
    pub genre: Genre,
    /// The document body.
    pub text: String,
    /// Every sensitive value in `text`; anything else found is a false
    /// positive.
    pub labels: Vec<Label>,
}

/// Appends text and labelled values, recording byte spans as it goes.
#[derive(Debug, Default)]
pub struct DocBuilder {
    text: String,
    labels: Vec<Label>,
}

impl DocBuilder {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends unlabelled text.
    pub fn text(&mut self, s: impl AsRef<str>) -> &mut Self {
        self.text.push_str(s.as_ref());
        self
    }

    /// Appends a sensitive value of type `ty`.
    pub fn pii(&mut self, ty: PiiType, value: &str) -> &mut Self {
        let start = self.text.len();
        self.text.push_str(value);
        self.labels.push(Label {
            ty,
            start,
            end: self.text.len(),
        });
        self
    }

    /// Appends a labelled value already rendered as `(ty, text)`; a `None`
    /// type appends plain text.
    pub fn part(&mut self, part: &(Option<PiiType>, String)) -> &mut Self {
        match part.0 {
            Some(ty) => self.pii(ty, &part.1),
            None => self.text(&part.1),
        }
    }

    /// Finishes the document.
    pub fn build(self, id: usize, genre: Genre) -> Document {
        Document {
            id,
            genre,
            text: self.text,
            labels: self.labels,
        }
    }
}
