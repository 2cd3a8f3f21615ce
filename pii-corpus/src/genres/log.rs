//! Server and access logs: timestamps, levels, request ids, client IPs,
//! durations, and the occasional user field that should not be there.

use mcp_guard_engine::pii::PiiType;

use super::value;
use crate::doc::DocBuilder;
use crate::negatives::{hard_negative, uuid};
use crate::rng::Rng;
use crate::values;

pub(super) fn write(rng: &mut Rng, b: &mut DocBuilder) {
    for _ in 0..rng.range(4, 12) {
        let ts = format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000)
        );
        match rng.below(5) {
            0 => access(rng, b, &ts),
            1 => app(rng, b, &ts),
            2 => kv(rng, b, &ts),
            3 => {
                b.text(format!("{ts} DEBUG {}\n", hard_negative(rng)));
            }
            _ => syslog(rng, b),
        }
    }
}

fn access(rng: &mut Rng, b: &mut DocBuilder, ts: &str) {
    let ip = value(rng, PiiType::Ip);
    let path = rng.pick(&["/api/v1/users", "/healthz", "/mcp", "/v1/chat/completions"]);
    b.pii(PiiType::Ip, &ip).text(format!(
        " - - [{ts}] \"POST {path} HTTP/1.1\" {} {} {}ms\n",
        rng.pick(&[200, 201, 401, 500]),
        rng.range(100, 99999),
        rng.range(1, 3000)
    ));
}

fn app(rng: &mut Rng, b: &mut DocBuilder, ts: &str) {
    let req = uuid(rng);
    b.text(format!("{ts} INFO  [req={req}] "));
    match rng.below(4) {
        0 => {
            let e = values::email(rng);
            b.text("user login ok for ").pii(PiiType::Email, &e);
            b.text(" from ");
            let ip = value(rng, PiiType::Ip);
            b.pii(PiiType::Ip, &ip);
            // Only IPv4 takes a bare `:port`; IPv6 needs brackets for it.
            if rng.chance(30) && !ip.contains(':') {
                b.text(format!(":{}", rng.range(1024, 65535)));
            }
        }
        1 => {
            let p = values::phone(rng);
            b.text("sms sent to ").pii(PiiType::Phone, &p);
            b.text(format!(" in {}ms", rng.range(5, 900)));
        }
        2 => {
            let ip = values::ipv6(rng);
            b.text("upstream connect to [").pii(PiiType::Ip, &ip);
            b.text(format!("]:{} failed", rng.range(80, 9000)));
        }
        _ => {
            let c = values::card(rng);
            b.text("WARN payment retry card=").pii(PiiType::Card, &c);
            b.text(format!(" attempt={}", rng.range(1, 5)));
        }
    }
    b.text("\n");
}

fn kv(rng: &mut Rng, b: &mut DocBuilder, ts: &str) {
    b.text(format!(
        "time={ts} level=info msg=\"request done\" duration={}.{}s",
        rng.below(10),
        rng.digits(3)
    ));
    let ty = *rng.pick(&[PiiType::Ip, PiiType::Email, PiiType::Token, PiiType::AwsKey]);
    let v = value(rng, ty);
    let k = match ty {
        PiiType::Ip => "remote_addr",
        PiiType::Email => "user",
        PiiType::Token => "auth",
        _ => "access_key",
    };
    if rng.chance(50) {
        b.text(format!(" {k}=")).pii(ty, &v);
    } else {
        b.text(format!(" {k}=\"")).pii(ty, &v).text("\"");
    }
    b.text("\n");
}

fn syslog(rng: &mut Rng, b: &mut DocBuilder) {
    let ip = values::ipv4(rng);
    b.text(format!(
        "Jun {:2} {:02}:{:02}:{:02} web-{} sshd[{}]: Failed password for root from ",
        rng.range(1, 30),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.range(1, 9),
        rng.range(1000, 65000)
    ));
    b.pii(PiiType::Ip, &ip)
        .text(format!(" port {} ssh2\n", rng.range(1024, 65535)));
}
