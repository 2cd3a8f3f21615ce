//! Assistant answers: prose with values in varied positions, markdown
//! lists and tables, inline code.

use mcp_guard_engine::pii::PiiType;

use super::{noun, prose_type, value, wrapped};
use crate::doc::DocBuilder;
use crate::negatives::hard_negative;
use crate::rng::Rng;
use crate::values;

pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    b.text(rng.pick(&[
        "Sure! Here is what I found:\n\n",
        "Based on the CRM record, ",
        "I looked up the customer. ",
        "Here are the details you asked for.\n",
        "",
    ]));
    for _ in 0..rng.range(3, 8) {
        match rng.below(8) {
            0 => sentence(rng, b),
            1 => bullet(rng, b),
            2 => table(rng, b),
            3 => line_start(rng, b),
            4 => {
                b.text(" Note that ")
                    .text(hard_negative(rng))
                    .text(" is unrelated. ");
            }
            5 => super::tricky::write(rng, b),
            6 => super::labelled::write(rng, b),
            _ => two_values(rng, b),
        }
    }
    b.text(rng.pick(&[
        "\n\nLet me know if you need anything else.",
        "",
        " Hope this helps!",
    ]));
}

fn sentence(rng: &mut Rng, b: &mut DocBuilder) {
    let ty = prose_type(rng);
    let v = value(rng, ty);
    let who = format!("{} {}", values::first_name(rng), values::last_name(rng));
    b.text(format!("{who}'s {} is ", noun(rng, ty)));
    wrapped(rng, b, ty, &v);
    b.text(" ");
}

fn bullet(rng: &mut Rng, b: &mut DocBuilder) {
    b.text("\n");
    for _ in 0..rng.range(2, 5) {
        let ty = prose_type(rng);
        let v = value(rng, ty);
        let n = noun(rng, ty);
        let style = rng.below(4);
        match style {
            0 => b.text(format!("- **{n}:** ")),
            1 => b.text(format!("* {n} - ")),
            2 => b.text(format!("{}. {n}: ", rng.range(1, 9))),
            _ => b.text(format!("  - `{n}` = ")),
        };
        b.pii(ty, &v).text("\n");
    }
}

fn table(rng: &mut Rng, b: &mut DocBuilder) {
    b.text("\n| Name | Email | Phone | IP |\n|------|-------|-------|----|\n");
    for _ in 0..rng.range(1, 4) {
        let name = values::first_name(rng);
        let (e, p, ip) = (
            values::email(rng),
            values::phone(rng),
            value(rng, PiiType::Ip),
        );
        b.text(format!("| {name} | "))
            .pii(PiiType::Email, &e)
            .text(" | ")
            .pii(PiiType::Phone, &p)
            .text(" | ")
            .pii(PiiType::Ip, &ip)
            .text(" |\n");
    }
}

fn line_start(rng: &mut Rng, b: &mut DocBuilder) {
    let ty = prose_type(rng);
    let v = value(rng, ty);
    b.text("\n")
        .pii(ty, &v)
        .text(rng.pick(&[
            " is the one on file.",
            " - confirmed by the customer.",
            ": verified",
            "\n",
        ]))
        .text(" ");
}

fn two_values(rng: &mut Rng, b: &mut DocBuilder) {
    let (t1, t2) = (prose_type(rng), prose_type(rng));
    let (v1, v2) = (value(rng, t1), value(rng, t2));
    b.text(format!("You can use the {} ", noun(rng, t1)));
    wrapped(rng, b, t1, &v1);
    b.text(rng.pick(&[" or the ", " and then ", " - otherwise "]));
    b.text(format!("{} ", noun(rng, t2)));
    b.pii(t2, &v2)
        .text(rng.pick(&[". ", ", thanks. ", "\n", "; "]));
}
