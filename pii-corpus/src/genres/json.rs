//! JSON API payloads: customer records with nested objects and arrays,
//! compact or pretty, with the escapes real serializers produce.

use mcp_guard_engine::pii::PiiType;

use super::value;
use crate::doc::DocBuilder;
use crate::negatives::{hard_negative, uuid};
use crate::rng::Rng;
use crate::values;

struct Json<'a> {
    b: &'a mut DocBuilder,
    pretty: bool,
    depth: usize,
}

impl Json<'_> {
    fn nl(&mut self) {
        if self.pretty {
            self.b.text("\n");
            self.b.text("  ".repeat(self.depth));
        }
    }
    fn open(&mut self, c: &str) {
        self.b.text(c);
        self.depth += 1;
        self.nl();
    }
    fn close(&mut self, c: &str) {
        self.depth -= 1;
        self.nl();
        self.b.text(c);
    }
    fn key(&mut self, k: &str) {
        self.b.text(format!("\"{k}\":"));
        if self.pretty {
            self.b.text(" ");
        }
    }
    fn comma(&mut self) {
        self.b.text(",");
        self.nl();
    }
    fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        self.b.text(format!("\"{v}\""));
    }
    fn pii_field(&mut self, k: &str, ty: PiiType, v: &str) {
        self.key(k);
        self.b.text("\"").pii(ty, v).text("\"");
    }
}

pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    let pretty = rng.chance(50);
    let mut j = Json {
        b,
        pretty,
        depth: 0,
    };
    j.open("{");
    j.str_field("request_id", &uuid(rng));
    j.comma();
    j.key("created");
    j.b.text(rng.range(1_600_000_000, 1_800_000_000).to_string());
    j.comma();
    j.key("data");
    j.open("[");
    for k in 0..rng.range(1, 3) {
        if k > 0 {
            j.comma();
        }
        customer(rng, &mut j);
    }
    j.close("]");
    j.comma();
    j.str_field("note", &note(rng));
    j.comma();
    j.key("summary");
    summary(rng, &mut j);
    j.close("}");
}

fn customer(rng: &mut Rng, j: &mut Json) {
    j.open("{");
    j.str_field("id", &format!("cus_{}", rng.alnum(14)));
    j.comma();
    j.str_field(
        "name",
        &format!("{} {}", values::first_name(rng), values::last_name(rng)),
    );
    j.comma();
    let email = values::email(rng);
    if rng.chance(10) && email.contains('+') {
        // .NET's default encoder escapes `+`.
        j.key("email");
        j.b.text("\"")
            .pii(PiiType::Email, &email.replacen('+', "\\u002B", 1))
            .text("\"");
    } else {
        j.pii_field("email", PiiType::Email, &email);
    }
    j.comma();
    j.pii_field("phone", PiiType::Phone, &values::phone(rng));
    j.comma();
    j.key("address");
    j.open("{");
    j.str_field("street", &format!("{} Main St", rng.range(1, 999)));
    j.comma();
    j.str_field("zip", &rng.digits(5));
    j.close("}");
    j.comma();
    j.key("payment");
    j.open("{");
    match rng.below(3) {
        0 => j.pii_field("card_number", PiiType::Card, &values::card(rng)),
        1 => j.pii_field("iban", PiiType::Iban, &values::iban(rng)),
        _ => {
            j.str_field("last4", &rng.digits(4));
            j.comma();
            j.str_field("order_ref", &hard_negative(rng));
        }
    }
    j.comma();
    j.str_field(
        "updated_at",
        &format!(
            "2024-{:02}-{:02}T10:15:00Z",
            rng.range(1, 12),
            rng.range(1, 28)
        ),
    );
    j.close("}");
    if rng.chance(40) {
        j.comma();
        match rng.below(5) {
            0 => j.pii_field("ssn", PiiType::Ssn, &values::ssn_bare(rng)),
            1 => {
                // Some exports keep the SSN as a JSON number.
                j.key("ssn");
                j.b.pii(PiiType::Ssn, &values::ssn_bare(rng));
            }
            _ => j.pii_field("ssn", PiiType::Ssn, &values::ssn(rng)),
        }
    }
    if rng.chance(40) {
        j.comma();
        j.key("last_login_ips");
        j.b.text("[");
        for k in 0..rng.range(1, 3) {
            if k > 0 {
                j.b.text(",");
            }
            let ip = value(rng, PiiType::Ip);
            j.b.text("\"").pii(PiiType::Ip, &ip).text("\"");
        }
        j.b.text("]");
    }
    j.close("}");
}

/// A free-text string value holding only look-alikes.
fn note(rng: &mut Rng) -> String {
    format!("{} (ticket {})", hard_negative(rng), rng.range(1000, 99999)).replace('"', "'")
}

fn summary(rng: &mut Rng, j: &mut Json) {
    let ty = super::prose_type(rng);
    let v = value(rng, ty);
    j.b.text("\"");
    j.b.text(rng.pick(&[
        "Customer asked to update contact.\\nNew ",
        "Escalated: \\\"",
        "Contact via ",
        "Verified. ",
    ]));
    j.b.text(format!("{}: ", super::noun(rng, ty)));
    j.b.pii(ty, &v);
    j.b.text(rng.pick(&[
        "\\\" per call",
        ".\\n",
        "",
        " \\u2014 ok",
        ", \\/api\\/v1 done",
    ]));
    j.b.text("\"");
}
