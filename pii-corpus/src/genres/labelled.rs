//! Values that are only sensitive because of the label in front of them
//! (a 9-digit SSN written without separators), phone numbers followed by
//! a parenthesised note, and the look-alikes around both: unlabelled
//! 9-digit numbers, 9-digit values under other labels, never-issued SSNs
//! after a label, and labels too far from the number.

use mcp_guard_engine::pii::PiiType;

use crate::doc::DocBuilder;
use crate::rng::Rng;
use crate::values;

/// Labels in prose, logs and config lines, as people write them.
const TEXT_LABELS: &[&str] = &[
    "SSN: ",
    "ssn=",
    "SSN#",
    "SSN # ",
    "ssn ",
    "SSN - ",
    "social security number ",
    "Social Security Number: ",
    "Social Security No. ",
    "social security #",
    "SSN is ",
    "National ID: ",
    "taxpayer id: ",
    "customer_ssn=",
    "employee SSN: ",
];

/// JSON keys whose value is an SSN.
const JSON_KEYS: &[&str] = &[
    "ssn",
    "SSN",
    "social_security_number",
    "socialSecurityNumber",
    "national_id",
    "nationalId",
    "taxpayer_id",
    "customer_ssn",
    "employeeSSN",
];

/// Labels that do not make a 9-digit number an SSN.
const OTHER_LABELS: &[&str] = &[
    "id: ",
    "order_id=",
    "Order #",
    "invoice ",
    "ref: ",
    "account: ",
    "zip: ",
    "routing number: ",
    "ts=",
    "ssn_count: ",
    "lessons ",
    "pin: ",
];

/// Writes one snippet.
pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    match rng.below(9) {
        0 | 1 => {
            let label = rng.word(TEXT_LABELS);
            let v = values::ssn_bare(rng);
            b.text(rng.pick(&["", "Applicant ", "\n", "Record: "]))
                .text(label)
                .pii(PiiType::Ssn, &v)
                .text(rng.pick(&["\n", ". ", ", ", " (verified)\n", ";"]));
        }
        2 => {
            let key = rng.word(JSON_KEYS);
            let v = values::ssn_bare(rng);
            let sp = if rng.chance(50) { " " } else { "" };
            b.text(format!(
                "{{\"name\":\"{}\",\"{key}\":{sp}",
                values::first_name(rng)
            ));
            if rng.chance(40) {
                b.pii(PiiType::Ssn, &v);
            } else {
                b.text("\"").pii(PiiType::Ssn, &v).text("\"");
            }
            b.text("}\n");
        }
        3 | 4 => {
            let p = values::phone(rng);
            b.text(rng.pick(&["Phone: ", "call ", "- ", "reach me at "]))
                .pii(PiiType::Phone, &p)
                .text(rng.pick(&[
                    " (mobile)",
                    " (verified)",
                    " (home)",
                    " (office)",
                    " (work, after 5pm)",
                    " (WhatsApp)",
                ]))
                .text(rng.pick(&["\n", ". ", ", "]));
        }
        5 => {
            let label = rng.word(OTHER_LABELS);
            b.text(label).text(nine_digits(rng)).text(rng.pick(&[
                "\n",
                ". ",
                " (ok) ",
                " (pending)\n",
            ]));
        }
        6 => {
            let key = *rng.pick(&["id", "order_id", "user_id", "zip4", "ssn_count", "ts"]);
            b.text(format!("{{\"{key}\": {}}}\n", nine_digits(rng)));
        }
        7 => {
            // A never-issued number after a label stays unmatched.
            let label = rng.word(TEXT_LABELS);
            b.text(label).text(bad_bare_ssn(rng)).text("\n");
        }
        _ => {
            // The label is there, but not in front of the number.
            b.text(rng.pick(&[
                "SSN verified for order ",
                "ssn on file; ticket ",
                "The SSN field was empty, batch ",
                "social security office, case ",
            ]))
            .text(nine_digits(rng))
            .text(".\n");
        }
    }
}

/// A 9-digit number not starting with 0.
fn nine_digits(rng: &mut Rng) -> String {
    rng.range(100_000_000, 999_999_999).to_string()
}

/// An SSN without separators that was never issued.
fn bad_bare_ssn(rng: &mut Rng) -> String {
    crate::negatives::bad_ssn(rng).replace(['-', ' '], "")
}
