//! Documents made only of look-alikes: anything found in them is a false
//! positive.

use crate::doc::DocBuilder;
use crate::negatives::hard_negative;
use crate::rng::Rng;

pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    let lead = *rng.pick(&[
        "Release notes:\n",
        "Build log\n",
        "Shipment status: ",
        "The calculation goes like this: ",
        "",
    ]);
    b.text(lead);
    for _ in 0..rng.range(5, 15) {
        b.text(hard_negative(rng));
        b.text(rng.pick(&[". ", ", ", "\n", "; ", " - ", " (ok) "]));
    }
}
