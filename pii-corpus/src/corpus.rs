//! Corpus generation: genres in fixed proportions, each document drawn
//! from its own seeded stream, so document `i` is the same whatever the
//! corpus size.

use crate::doc::{Document, Genre};
use crate::genres;
use crate::rng::Rng;

/// Default corpus seed.
pub const DEFAULT_SEED: u64 = 0x5eed_c0de;

/// The genre of document `id`: 30% chat, 25% JSON, 15% logs, 15% code,
/// 15% hard negatives.
fn genre_of(rng: &mut Rng) -> Genre {
    match rng.below(100) {
        0..=29 => Genre::Chat,
        30..=54 => Genre::Json,
        55..=69 => Genre::Log,
        70..=84 => Genre::Code,
        _ => Genre::Negative,
    }
}

/// Document `id` of the corpus seeded with `seed`.
pub fn document(seed: u64, id: usize) -> Document {
    let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0xd134_2543_de82_ef95));
    let genre = genre_of(&mut rng);
    genres::generate(&mut rng, id, genre)
}

/// `docs` documents from `seed`.
pub fn generate(docs: usize, seed: u64) -> Vec<Document> {
    (0..docs).map(|id| document(seed, id)).collect()
}
