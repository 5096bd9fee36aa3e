//! The byte encodings of the proxy-wasm ABI that the adapter sends and reads: header maps and
//! property paths. Pure, so tested here rather than through a host.
//!
//! A map is its pair count (`u32`, little-endian), then each pair's name and value lengths
//! (`u32` each), then each name and value, each followed by a NUL byte.

/// A header map in the ABI's encoding.
pub fn map<V: AsRef<[u8]>>(pairs: &[(&str, V)]) -> Vec<u8> {
    let size = pairs
        .iter()
        .map(|(n, v)| n.len() + v.as_ref().len() + 10)
        .sum::<usize>()
        + 4;
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&length(pairs.len()));
    for (name, value) in pairs {
        bytes.extend_from_slice(&length(name.len()));
        bytes.extend_from_slice(&length(value.as_ref().len()));
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_ref());
        bytes.push(0);
    }
    bytes
}

fn length(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

/// The pairs of a header map the host encoded. A map that does not add up (never from a real
/// host) reads as far as it does.
pub fn parse_map(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let count = |at: usize| -> Option<usize> {
        let word: [u8; 4] = bytes.get(at..at.saturating_add(4))?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(word)).ok()
    };
    let Some(pairs) = count(0) else {
        return Vec::new();
    };
    // At most what the sizes section can hold: a bogus count allocates nothing large.
    let mut entries = Vec::with_capacity(pairs.min(bytes.len() / 8));
    let mut data = pairs.saturating_mul(8).saturating_add(4);
    for i in 0..pairs {
        let sizes = i.saturating_mul(8).saturating_add(4);
        let (Some(name_len), Some(value_len)) = (count(sizes), count(sizes.saturating_add(4))) else {
            break;
        };
        let name_end = data.saturating_add(name_len);
        let value_start = name_end.saturating_add(1);
        let value_end = value_start.saturating_add(value_len);
        let (Some(name), Some(value)) = (bytes.get(data..name_end), bytes.get(value_start..value_end)) else {
            break;
        };
        let name = match std::str::from_utf8(name) {
            Ok(name) => name.to_owned(),
            Err(_) => String::from_utf8_lossy(name).into_owned(),
        };
        entries.push((name, value.to_vec()));
        data = value_end.saturating_add(1);
    }
    entries
}

/// A property path in the ABI's encoding: its segments joined by NUL bytes (so a one-segment
/// path is the segment itself).
pub fn property_path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// The encoding proxy-wasm-cpp-host writes for `:method: GET`, `x-a: 1`.
    const TWO_PAIRS: &[u8] = b"\x02\0\0\0\x07\0\0\0\x03\0\0\0\x03\0\0\0\x01\0\0\0:method\0GET\0x-a\x001\0";

    #[wasm_bindgen_test(unsupported = test)]
    fn maps_round_trip_in_the_hosts_encoding() {
        let encoded = map(&[(":method", b"GET".as_slice()), ("x-a", b"1".as_slice())]);
        assert_eq!(encoded, TWO_PAIRS);
        assert_eq!(
            parse_map(TWO_PAIRS),
            vec![
                (":method".to_owned(), b"GET".to_vec()),
                ("x-a".to_owned(), b"1".to_vec())
            ]
        );
        assert_eq!(map::<&[u8]>(&[]), b"\0\0\0\0");
        assert!(parse_map(b"").is_empty());
        assert!(parse_map(b"\0\0\0\0").is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn values_may_hold_any_byte() {
        let value = b"a\0b\xff".as_slice();
        let parsed = parse_map(&map(&[("x-bin", value), ("x-next", b"".as_slice())]));
        assert_eq!(
            parsed,
            vec![("x-bin".to_owned(), value.to_vec()), ("x-next".to_owned(), Vec::new())]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_map_that_does_not_add_up_reads_as_far_as_it_does() {
        let mut truncated = TWO_PAIRS.to_vec();
        truncated.truncate(TWO_PAIRS.len() - 4);
        assert_eq!(parse_map(&truncated), vec![(":method".to_owned(), b"GET".to_vec())]);
        // A pair count far beyond the bytes: nothing read, nothing large allocated.
        assert!(parse_map(b"\xff\xff\xff\xff\x01\0\0\0").is_empty());
        assert!(parse_map(b"\x01\0").is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn property_paths_join_their_segments_with_nul() {
        assert_eq!(property_path(&["plugin_root_id"]), b"plugin_root_id");
        assert_eq!(property_path(&["request", "headers", "x"]), b"request\0headers\0x");
    }
}
