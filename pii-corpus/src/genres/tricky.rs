//! Realistic placements that stress boundaries: links, extensions, CIDR
//! suffixes, credential tables, YAML, and MCP tool results carrying a
//! JSON document encoded as a string.

use mcp_guard_engine::pii::PiiType;

use super::value;
use crate::doc::DocBuilder;
use crate::rng::Rng;
use crate::values;

/// Writes one tricky snippet.
pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    match rng.below(10) {
        0 => {
            let e = values::email(rng);
            b.text("Contact: [")
                .pii(PiiType::Email, &e)
                .text("](mailto:")
                .pii(PiiType::Email, &e)
                .text(")\n");
        }
        1 => {
            let p = format!(
                "{} {} {}",
                rng.pick(&["(+44) 20", "+44 (0) 20", "(+49) 30", "+1 (800)"]),
                rng.range(2000, 8999),
                rng.digits(4)
            );
            b.text("Call us on ").pii(PiiType::Phone, &p);
            b.text(rng.pick(&[" ext. 204.", " x12, ", " (mobile).", "\n"]));
        }
        2 => {
            let c = values::card(rng);
            b.text("Card ").pii(PiiType::Card, &c).text(format!(
                "{}{:02}/{}",
                rng.pick(&[", exp ", " (exp ", " expires "]),
                rng.range(1, 12),
                rng.range(26, 31)
            ));
            b.text(".\n");
        }
        3 => {
            let ip = values::ipv4(rng);
            b.text("allow ")
                .pii(PiiType::Ip, &ip)
                .text(format!("/{};\n", rng.range(8, 32)));
        }
        4 => {
            let (a, c) = (values::ipv4(rng), values::ipv4(rng));
            b.text("X-Forwarded-For: ")
                .pii(PiiType::Ip, &a)
                .text(", ")
                .pii(PiiType::Ip, &c)
                .text("\n");
            let v6 = values::ipv6(rng);
            b.text("listen [").pii(PiiType::Ip, &v6).text("]:8443\n");
        }
        5 => {
            let (k, s) = (values::aws_key_id(rng), values::aws_secret(rng));
            b.text("| User | Access key | Secret |\n|---|---|---|\n| deploy | ")
                .pii(PiiType::AwsKey, &k)
                .text(" | ")
                .pii(PiiType::AwsSecret, &s)
                .text(" |\n");
        }
        6 => {
            let (k, s) = (values::aws_key_id(rng), values::aws_secret(rng));
            b.text("env:\n  AWS_ACCESS_KEY_ID: ")
                .pii(PiiType::AwsKey, &k)
                .text("\n  AWS_SECRET_ACCESS_KEY: \"")
                .pii(PiiType::AwsSecret, &s)
                .text("\"\n");
        }
        7 => mcp_result(rng, b),
        8 => {
            let t = values::token(rng);
            b.text("git remote set-url origin https://x-access-token:")
                .pii(PiiType::Token, &t)
                .text("@github.com/acme/app.git\n");
        }
        _ => {
            let ty = super::prose_type(rng);
            let v = value(rng, ty);
            b.text("> ")
                .pii(ty, &v)
                .text(" <- flagged by the customer\n");
        }
    }
}

/// An MCP `tools/call` result whose text is a JSON document encoded as a
/// string (escaped quotes around every value).
fn mcp_result(rng: &mut Rng, b: &mut DocBuilder) {
    b.text(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"{\"customer\":{\"email\":\""#);
    let e = values::email(rng);
    b.pii(PiiType::Email, &e).text(r#"\",\"phone\":\""#);
    let p = values::phone(rng);
    b.pii(PiiType::Phone, &p).text(r#"\",\"ssn\":\""#);
    let s = values::ssn(rng);
    b.pii(PiiType::Ssn, &s).text(r#"\",\"card\":\""#);
    let c = values::card(rng);
    b.pii(PiiType::Card, &c).text(r#"\"},\"lastIp\":\""#);
    let ip = value(rng, PiiType::Ip);
    b.pii(PiiType::Ip, &ip)
        .text(r#"\"}"}],"isError":false}}"#)
        .text("\n");
}
