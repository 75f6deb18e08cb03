//! Idempotency keys: UUID version 7 (RFC 9562), formatted from a timestamp and entropy that the
//! caller supplies, so the format is a pure, testable function.
//!
//! A key is made once per `track()` call, stored with the event, and sent unchanged on every
//! retry and replay: the server then records the event once however many times it arrives.

use alloc::string::String;

/// Formats a UUID v7: 48 bits of Unix milliseconds, version `7`, 12 random bits, variant `10`,
/// 62 random bits; lowercase `8-4-4-4-12`.
///
/// `rand` supplies the 74 random bits (10 bytes; 6 bits are overwritten by version/variant).
pub fn uuid_v7(unix_ms: u64, rand: [u8; 10]) -> String {
    let mut b = [0u8; 16];
    let ms = unix_ms & 0xFFFF_FFFF_FFFF;
    for (i, slot) in b.iter_mut().take(6).enumerate() {
        *slot = (ms >> (40 - 8 * i)) as u8;
    }
    for (slot, r) in b.iter_mut().skip(6).zip(rand) {
        *slot = r;
    }
    b[6] = 0x70 | (b[6] & 0x0F);
    b[8] = 0x80 | (b[8] & 0x3F);
    format_uuid(&b)
}

fn format_uuid(b: &[u8; 16]) -> String {
    // Into bytes, then one copy into a `String`: `String::push` a char at a time was 5% of a
    // `validate()` call.
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        if let Some([hi, lo]) = out.get_mut(at..at + 2) {
            *hi = hex_digit(byte >> 4) as u8;
            *lo = hex_digit(byte & 15) as u8;
        }
        at += 2;
    }
    // SAFETY: every byte is an ASCII hex digit or `-`, so the bytes are UTF-8. (Not
    // `String::from_utf8`: its validator costs ~0.8 KB of wasm.)
    unsafe { String::from_utf8_unchecked(out.to_vec()) }
}

/// The lowercase hex digit of the low four bits of `n`.
pub(crate) fn hex_digit(n: u8) -> char {
    let n = n & 15;
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

/// True when `s` has the layout of a UUID v7 as [`uuid_v7`] writes it.
pub fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b.get(14) == Some(&b'7')
        && matches!(b.get(19), Some(b'8' | b'9' | b'a' | b'b'))
}

/// The Unix milliseconds encoded in a UUID v7, if `s` is one.
pub fn uuid_v7_ms(s: &str) -> Option<u64> {
    if !is_uuid_v7(s) {
        return None;
    }
    let hex: String = s.get(0..8)?.chars().chain(s.get(9..13)?.chars()).collect();
    u64::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// splitmix64: a deterministic stand-in for `crypto.getRandomValues` in native tests.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn rand10(state: &mut u64) -> [u8; 10] {
        let a = splitmix(state).to_le_bytes();
        let b = splitmix(state).to_le_bytes();
        let mut r = [0u8; 10];
        r[..8].copy_from_slice(&a);
        r[8..].copy_from_slice(&b[..2]);
        r
    }

    #[test]
    fn known_vector_layout() {
        // RFC 9562 appendix A.6 example: 0x017F22E279B0 ms with fixed random parts.
        let k = uuid_v7(
            0x017F_22E2_79B0,
            [0x0C, 0xC3, 0x18, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F],
        );
        assert_eq!(k, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
        assert!(is_uuid_v7(&k));
        assert_eq!(uuid_v7_ms(&k), Some(0x017F_22E2_79B0));
    }

    #[test]
    fn version_and_variant_bits_always_set() {
        for r in [[0u8; 10], [0xFF; 10]] {
            let k = uuid_v7(u64::MAX, r);
            assert!(is_uuid_v7(&k), "{k}");
        }
    }

    #[test]
    fn hundred_thousand_keys_unique_and_time_ordered_across_ms() {
        let mut state = 42u64;
        let mut seen = HashSet::new();
        let mut last = String::new();
        for i in 0..100_000u64 {
            let ms = 1_764_000_000_000 + i / 10;
            let k = uuid_v7(ms, rand10(&mut state));
            assert!(is_uuid_v7(&k), "{k}");
            assert_eq!(uuid_v7_ms(&k), Some(ms));
            if i % 10 == 0 {
                assert!(
                    k > last,
                    "keys from later milliseconds sort after earlier ones"
                );
            }
            last.clone_from(&k);
            assert!(seen.insert(k), "duplicate key at {i}");
        }
    }

    #[test]
    fn rejects_other_layouts() {
        for s in [
            "",
            "017f22e2-79b0-4cc3-98c4-dc0c0c07398f",
            "017F22E2-79B0-7CC3-98C4-DC0C0C07398F",
            "017f22e2-79b0-7cc3-c8c4-dc0c0c07398f",
            "017f22e279b07cc398c4dc0c0c07398f",
        ] {
            assert!(!is_uuid_v7(s), "{s}");
        }
    }
}
