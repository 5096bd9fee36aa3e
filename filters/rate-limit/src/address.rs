//! The client a downstream address stands for: an IPv4 address, or an IPv6 network.

use shared::ip::{self, Ip};
use shared::{ConfigError, FieldPath};

/// An IPv6 client is its /64 unless configured otherwise: a host usually holds a whole /64 (RFC
/// 7421) and can take a new address from it for every request.
pub const DEFAULT_IPV6_PREFIX: u32 = 64;
pub const DEFAULT_IPV4_PREFIX: u32 = 32;

/// How many leading bits of an address name a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    ipv4_prefix: u32,
    ipv6_prefix: u32,
}

impl Grouping {
    pub fn compile(ipv4_prefix: Option<u32>, ipv6_prefix: Option<u32>, at: &FieldPath) -> Result<Self, ConfigError> {
        let ipv4_prefix = ipv4_prefix.unwrap_or(DEFAULT_IPV4_PREFIX);
        let ipv6_prefix = ipv6_prefix.unwrap_or(DEFAULT_IPV6_PREFIX);
        if !(1..=32).contains(&ipv4_prefix) {
            return Err(at.field("ipv4_prefix").error("must be 1 to 32"));
        }
        if !(1..=128).contains(&ipv6_prefix) {
            return Err(at.field("ipv6_prefix").error("must be 1 to 128"));
        }
        Ok(Self {
            ipv4_prefix,
            ipv6_prefix,
        })
    }

    /// The client `address` (as Envoy gives `source.address`, port and all) stands for: the IP
    /// address when its prefix is the whole address, else its network (`2001:db8:1:2::/64`). An
    /// IPv4-mapped IPv6 address is its IPv4 address, and so is one in the NAT64 well-known prefix
    /// `64:ff9b::/96` (RFC 6052): behind a NAT64 or SIIT edge every IPv4 client arrives so, and
    /// would otherwise be one /64 with all the others. Anything else (a pipe) is as it is, without
    /// the port.
    pub fn client(&self, address: &str) -> String {
        let address = without_port(address);
        match Ip::parse(address) {
            Some(Ip::V4(v4)) => self.ipv4(v4),
            Some(Ip::V6(v6)) => match ipv4_mapped(v6).or_else(|| nat64_embedded(v6)) {
                Some(v4) => self.ipv4(v4),
                None => self.ipv6(v6),
            },
            None => address.to_owned(),
        }
    }

    fn ipv4(&self, address: u32) -> String {
        let mut text = String::new();
        ip::write_ipv4(
            &mut text,
            address & u32::MAX.checked_shl(32 - self.ipv4_prefix).unwrap_or(0),
        );
        network(text, self.ipv4_prefix, 32)
    }

    fn ipv6(&self, address: u128) -> String {
        let mut text = String::new();
        ip::write_ipv6(
            &mut text,
            address & u128::MAX.checked_shl(128 - self.ipv6_prefix).unwrap_or(0),
        );
        network(text, self.ipv6_prefix, 128)
    }
}

/// The masked `address` as a network (`192.0.2.0/24`), or as itself when `prefix` is all of it.
fn network(mut address: String, prefix: u32, bits: u32) -> String {
    if prefix < bits {
        address.push('/');
        address.push_str(&prefix.to_string());
    }
    address
}

/// The IPv4 address an IPv4-mapped address (`::ffff:192.0.2.7`) carries.
fn ipv4_mapped(address: u128) -> Option<u32> {
    (address >> 32 == 0xffff).then_some(address as u32)
}

/// The IPv4 address a NAT64 well-known-prefix address (`64:ff9b::192.0.2.7`) carries.
fn nat64_embedded(address: u128) -> Option<u32> {
    const WELL_KNOWN_PREFIX: u128 = 0x0064_ff9b_u128 << 96;
    (address >> 32 << 32 == WELL_KNOWN_PREFIX).then_some(address as u32)
}

/// `1.2.3.4:5678` → `1.2.3.4`, `[::1]:5678` → `::1`; anything else unchanged.
fn without_port(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(address, |(ip, _)| ip);
    }
    match address.split_once(':') {
        Some((ip, port)) if !port.contains(':') => ip,
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn grouping(ipv4: Option<u32>, ipv6: Option<u32>) -> Grouping {
        Grouping::compile(ipv4, ipv6, &FieldPath::root()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn addresses_lose_their_port() {
        assert_eq!(without_port("10.1.2.3:5678"), "10.1.2.3");
        assert_eq!(without_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(without_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(without_port("10.1.2.3"), "10.1.2.3");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn by_default_an_ipv4_client_is_its_address_and_an_ipv6_client_its_64() {
        let default = grouping(None, None);
        assert_eq!(default.client("192.0.2.7:50000"), "192.0.2.7");
        for address in [
            "[2001:db8:1:2::5]:443",
            "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1",
            "2001:DB8:1:2::9",
        ] {
            assert_eq!(default.client(address), "2001:db8:1:2::/64", "{address}");
        }
        assert_eq!(default.client("[2001:db8:1:3::5]:443"), "2001:db8:1:3::/64");
        assert_eq!(default.client("[::ffff:192.0.2.7]:443"), "192.0.2.7");
        assert_eq!(default.client("[64:ff9b::192.0.2.7]:443"), "192.0.2.7");
        assert_eq!(default.client("[64:ff9b::c000:208]:443"), "192.0.2.8");
        assert_eq!(
            default.client("[64:ff9b:1::c000:208]:443"),
            "64:ff9b:1::/64",
            "not the well-known prefix"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn prefixes_set_the_size_of_a_client() {
        let wide = grouping(Some(24), Some(48));
        assert_eq!(wide.client("192.0.2.7:1"), "192.0.2.0/24");
        assert_eq!(wide.client("[2001:db8:1:2::5]:1"), "2001:db8:1::/48");
        let exact = grouping(Some(32), Some(128));
        assert_eq!(exact.client("[2001:db8:1:2::5]:1"), "2001:db8:1:2::5");
        let one = grouping(Some(1), Some(1));
        assert_eq!(one.client("192.0.2.7:1"), "128.0.0.0/1");
        assert_eq!(one.client("[2001:db8::1]:1"), "::/1");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn what_is_not_an_ip_address_stays_as_it_is() {
        assert_eq!(
            grouping(None, None).client("/var/run/envoy.sock"),
            "/var/run/envoy.sock"
        );
        assert_eq!(grouping(None, None).client("envoy-internal"), "envoy-internal");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn prefixes_out_of_range_are_refused_with_their_field() {
        let at = FieldPath::root().field("source");
        for (v4, v6, field) in [
            (Some(0), None, "ipv4_prefix"),
            (Some(33), None, "ipv4_prefix"),
            (Some(300), None, "ipv4_prefix"),
            (None, Some(0), "ipv6_prefix"),
            (None, Some(129), "ipv6_prefix"),
        ] {
            let error = Grouping::compile(v4, v6, &at).unwrap_err();
            assert_eq!(error.path, format!("source.{field}"));
        }
    }
}
