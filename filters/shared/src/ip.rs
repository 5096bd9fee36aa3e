//! IP addresses read and written as `core::net` reads and writes them, without its parser and
//! `Display` (7.8 KB of a module): the same forms accepted and the same text, held to `core::net`
//! by property tests.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    V4(u32),
    V6(u128),
}

impl Ip {
    /// An IPv4 address in dotted decimal, or an IPv6 address in RFC 4291 text form (hex groups,
    /// at most one `::`, an IPv4 address as the last 32 bits); no zone, brackets or port.
    pub fn parse(text: &str) -> Option<Ip> {
        match parse_ipv4(text) {
            Some(v4) => Some(Ip::V4(v4)),
            None => parse_ipv6(text).map(Ip::V6),
        }
    }
}

/// Four decimal octets, each 0 to 255 and without leading zeros (`010` could be octal).
pub fn parse_ipv4(text: &str) -> Option<u32> {
    let mut octets = text.split('.');
    let mut bits = 0u32;
    for _ in 0..4 {
        bits = bits << 8 | u32::from(octet(octets.next()?)?);
    }
    octets.next().is_none().then_some(bits)
}

fn octet(digits: &str) -> Option<u8> {
    let leading_zero = digits.len() > 1 && digits.starts_with('0');
    if leading_zero || digits.len() > 3 {
        return None;
    }
    u8::try_from(number(digits, 10)?).ok()
}

/// The value of one or more digits in `radix` (at most 4 of them, by the callers).
fn number(digits: &str, radix: u32) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits
        .chars()
        .try_fold(0, |value, c| Some(value * radix + c.to_digit(radix)?))
}

/// Eight groups of one to four hex digits; `::` once stands for one or more zero groups, and the
/// last two groups may be written as an IPv4 address.
pub fn parse_ipv6(text: &str) -> Option<u128> {
    let mut groups = [0u16; 8];
    match split_once_bytes(text, "::") {
        None => (read_groups(text, true, &mut groups)? == 8).then_some(())?,
        Some((head, tail)) => {
            let head_len = if head.is_empty() {
                0
            } else {
                read_groups(head, false, &mut groups)?
            };
            let mut tail_groups = [0u16; 8];
            let tail_len = if tail.is_empty() {
                0
            } else {
                read_groups(tail, true, &mut tail_groups)?
            };
            if head_len + tail_len > 7 {
                return None;
            }
            groups
                .get_mut(8 - tail_len..)?
                .copy_from_slice(tail_groups.get(..tail_len)?);
        }
    }
    Some(groups.iter().fold(0u128, |bits, &group| bits << 16 | u128::from(group)))
}

/// Reads the colon-separated `text`'s groups into `groups` and counts them; its last part may be
/// an IPv4 address if `ipv4_last`.
fn read_groups(text: &str, ipv4_last: bool, groups: &mut [u16; 8]) -> Option<usize> {
    let mut len = 0;
    let mut parts = text.split(':').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if last && ipv4_last && part.contains('.') {
            let v4 = parse_ipv4(part)?;
            *groups.get_mut(len)? = (v4 >> 16) as u16;
            *groups.get_mut(len + 1)? = v4 as u16;
            len += 2;
        } else {
            if part.len() > 4 {
                return None;
            }
            *groups.get_mut(len)? = number(part, 16)? as u16;
            len += 1;
        }
    }
    Some(len)
}

/// `str::split_once` with a `&str` pattern links core's two-way substring search (2.5 KB).
fn split_once_bytes<'a>(text: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let at = text
        .as_bytes()
        .windows(separator.len())
        .position(|w| w == separator.as_bytes())?;
    Some((text.get(..at)?, text.get(at + separator.len()..)?))
}

pub fn write_ipv4(out: &mut String, bits: u32) {
    let [a, b, c, d] = bits.to_be_bytes();
    let _ = write!(out, "{a}.{b}.{c}.{d}");
}

/// RFC 5952's form, as `core::net` writes it: [`write_ipv6_groups`], but an IPv4-mapped address
/// as `::ffff:a.b.c.d`.
pub fn write_ipv6(out: &mut String, bits: u128) {
    if bits >> 32 == 0xffff {
        out.push_str("::ffff:");
        return write_ipv4(out, bits as u32);
    }
    write_ipv6_groups(out, bits);
}

/// Lowercase hex groups without leading zeros, the first longest run of two or more zero groups
/// as `::`: the form URLs serialize a host in (WHATWG URL), which browsers send in `Origin`.
pub fn write_ipv6_groups(out: &mut String, bits: u128) {
    let groups: [u16; 8] = std::array::from_fn(|i| (bits >> (112 - 16 * i)) as u16);
    let (mut zeros_at, mut zeros_len, mut run) = (0, 0, 0);
    for (i, &group) in groups.iter().enumerate() {
        run = if group == 0 { run + 1 } else { 0 };
        if run > zeros_len {
            (zeros_at, zeros_len) = (i + 1 - run, run);
        }
    }
    let write_groups = |out: &mut String, groups: &[u16]| {
        for (i, group) in groups.iter().enumerate() {
            let _ = write!(out, "{}{group:x}", if i > 0 { ":" } else { "" });
        }
    };
    if zeros_len > 1 {
        write_groups(out, groups.get(..zeros_at).unwrap_or_default());
        out.push_str("::");
        write_groups(out, groups.get(zeros_at + zeros_len..).unwrap_or_default());
    } else {
        write_groups(out, &groups);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn v6(bits: u128) -> String {
        let mut out = String::new();
        write_ipv6(&mut out, bits);
        out
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn addresses_are_read() {
        assert_eq!(Ip::parse("192.0.2.7"), Some(Ip::V4(0xc000_0207)));
        assert_eq!(Ip::parse("0.0.0.0"), Some(Ip::V4(0)));
        assert_eq!(Ip::parse("::"), Some(Ip::V6(0)));
        assert_eq!(Ip::parse("::1"), Some(Ip::V6(1)));
        assert_eq!(Ip::parse("1::"), Some(Ip::V6(1 << 112)));
        assert_eq!(Ip::parse("2001:DB8::0001"), Some(Ip::V6(0x2001_0db8 << 96 | 1)));
        assert_eq!(Ip::parse("::ffff:192.0.2.7"), Some(Ip::V6(0xffff_c000_0207)));
        assert_eq!(Ip::parse("1:2:3:4:5:6:192.0.2.7"), Ip::parse("1:2:3:4:5:6:c000:207"));
        assert_eq!(Ip::parse("1:2:3:4:5::192.0.2.7"), Ip::parse("1:2:3:4:5:0:c000:207"));
        assert_eq!(Ip::parse("1:2:3:4:5:6:7::"), Ip::parse("1:2:3:4:5:6:7:0"));
        assert_eq!(Ip::parse("::2:3:4:5:6:7:8"), Ip::parse("0:2:3:4:5:6:7:8"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn what_core_net_refuses_is_refused() {
        for text in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "256.0.0.1",
            "1.2.3.-4",
            "+1.2.3.4",
            "1..2.3",
            ":",
            ":::",
            "1:::2",
            "::1::",
            ":1::",
            "1::2:",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "12345::",
            "g::",
            "1.2.3.4::",
            "::1.2.3.4:5",
            "1:2:3:4:5:6::1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::01.2.3.4",
            "fe80::1%eth0",
            "[::1]",
            "::１",
        ] {
            assert_eq!(Ip::parse(text), None, "{text:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ipv6_is_written_in_its_canonical_form() {
        assert_eq!(v6(0), "::");
        assert_eq!(v6(1), "::1");
        assert_eq!(v6(1 << 112), "1::");
        assert_eq!(v6(0x2001_0db8 << 96 | 1), "2001:db8::1");
        assert_eq!(v6(0x2001_0db8_0000_0001_0000_0000_0000_0001), "2001:db8:0:1::1");
        assert_eq!(v6(0x2001_0db8_0000_0000_0001_0000_0000_0001), "2001:db8::1:0:0:1");
        assert_eq!(v6(0x0001_0002_0003_0004_0005_0006_0007_0008), "1:2:3:4:5:6:7:8");
        assert_eq!(v6(0x0001_0000_0003_0004_0005_0006_0007_0008), "1:0:3:4:5:6:7:8");
        assert_eq!(v6(0xffff_c000_0207), "::ffff:192.0.2.7");
        let mut url_form = String::new();
        write_ipv6_groups(&mut url_form, 0xffff_c000_0207);
        assert_eq!(url_form, "::ffff:c000:207");
    }
}

#[cfg(all(test, not(target_family = "wasm")))]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn as_core(ip: Ip) -> IpAddr {
        match ip {
            Ip::V4(bits) => IpAddr::V4(Ipv4Addr::from(bits)),
            Ip::V6(bits) => IpAddr::V6(Ipv6Addr::from(bits)),
        }
    }

    /// Addresses with long zero runs, mapped and NAT64 ones, as often as any other.
    fn ipv6_bits() -> impl Strategy<Value = u128> {
        let groups = proptest::collection::vec(prop_oneof![Just(0u16), Just(0xffff), any::<u16>()], 8);
        prop_oneof![
            groups.prop_map(|groups| groups.iter().fold(0u128, |bits, &g| bits << 16 | u128::from(g))),
            any::<u32>().prop_map(|v4| 0xffff_0000_0000 | u128::from(v4)),
            any::<u128>(),
        ]
    }

    /// Texts near addresses: pieces of them joined in any order.
    fn address_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(":"),
            Just("::"),
            Just("."),
            Just("0"),
            Just("00"),
            Just("1"),
            Just("01"),
            Just("255"),
            Just("256"),
            Just("ffff"),
            Just("FFFF"),
            Just("12345"),
            Just("db8"),
            Just("g"),
            Just("%1"),
            Just("1.2.3.4"),
            Just("::ffff:"),
            Just("1:2:3:4:5:6:"),
            Just(" "),
            Just("é"),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn reads_what_core_net_reads(text in address_like()) {
            prop_assert_eq!(Ip::parse(&text).map(as_core), text.parse::<IpAddr>().ok(), "{:?}", text);
        }

        #[test]
        fn reads_every_address_core_net_writes(bits in ipv6_bits(), v4 in any::<u32>()) {
            let text = Ipv6Addr::from(bits).to_string();
            prop_assert_eq!(parse_ipv6(&text), Some(bits));
            prop_assert_eq!(parse_ipv4(&Ipv4Addr::from(v4).to_string()), Some(v4));
        }

        #[test]
        fn writes_what_core_net_writes(bits in ipv6_bits(), v4 in any::<u32>()) {
            let mut out = String::new();
            write_ipv6(&mut out, bits);
            prop_assert_eq!(out, Ipv6Addr::from(bits).to_string());
            let mut out = String::new();
            write_ipv4(&mut out, v4);
            prop_assert_eq!(out, Ipv4Addr::from(v4).to_string());
        }
    }
}
