//! IP addresses.

use crate::rng::Rng;

/// An IPv4 address, private and public ranges alike.
pub fn ipv4(rng: &mut Rng) -> String {
    let o = |rng: &mut Rng| rng.range(0, 255);
    match rng.below(4) {
        0 => format!("10.{}.{}.{}", o(rng), o(rng), rng.range(1, 254)),
        1 => format!("192.168.{}.{}", o(rng), rng.range(1, 254)),
        2 => format!("172.{}.{}.{}", rng.range(16, 31), o(rng), rng.range(1, 254)),
        _ => format!(
            "{}.{}.{}.{}",
            rng.range(1, 223),
            o(rng),
            o(rng),
            rng.range(1, 254)
        ),
    }
}

fn group(rng: &mut Rng) -> String {
    let v = rng.below(0x10000);
    format!("{v:x}")
}

/// An IPv6 address: full, compressed, link-local, loopback or
/// IPv4-mapped.
pub fn ipv6(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => {
            let g: Vec<String> = (0..8)
                .map(|_| format!("{:04x}", rng.below(0x10000)))
                .collect();
            format!("2001:0db8:{}", g[2..].join(":"))
        }
        1 => format!("2001:db8:{}::{}", group(rng), group(rng)),
        2 => format!(
            "fe80::{}:{}:{}:{:x}",
            group(rng),
            group(rng),
            group(rng),
            rng.range(1, 0xffff)
        ),
        3 => "::1".to_string(),
        4 => format!(
            "::ffff:{}.{}.{}.{}",
            rng.range(1, 223),
            rng.below(256),
            rng.below(256),
            rng.range(1, 254)
        ),
        5 => {
            let g: Vec<String> = (0..6).map(|_| group(rng)).collect();
            format!("2600:1f18:{}", g.join(":"))
        }
        _ => format!(
            "2001:DB8:{:X}:{:X}::{:X}",
            rng.below(0x10000),
            rng.below(0x10000),
            rng.range(1, 0xffff)
        ),
    }
}
