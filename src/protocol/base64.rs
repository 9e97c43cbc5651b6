//! Base64 as memcached 1.6 reads and writes keys with the meta `b` flag.
//!
//! Decoding follows memcached's `base64_decode` exactly, quirks included:
//! bytes outside the alphabet are skipped, the count of alphabet bytes must
//! be a positive multiple of four, and decoding stops after the first block
//! that holds padding.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 6-bit value of an alphabet byte (`=` counts as 0), or `None`.
fn value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(0),
        _ => None,
    }
}

/// Decodes `src` into `out`, which must hold `src.len()` bytes; returns the
/// decoded length, or `None` where memcached's decoder returns 0 (which
/// it treats as failure, so an empty result is a failure too).
pub fn decode(src: &[u8], out: &mut [u8]) -> Option<usize> {
    let count = src.iter().filter(|&&b| value(b).is_some()).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return None;
    }
    let mut len = 0;
    let mut block = [0u8; 4];
    let mut filled = 0;
    let mut pad = 0;
    for &b in src {
        let Some(v) = value(b) else { continue };
        if b == b'=' {
            pad += 1;
        }
        block[filled] = v;
        filled += 1;
        if filled == 4 {
            out[len] = block[0] << 2 | block[1] >> 4;
            out[len + 1] = block[1] << 4 | block[2] >> 2;
            out[len + 2] = block[2] << 6 | block[3];
            len += 3;
            filled = 0;
            if pad > 0 {
                if pad > 2 {
                    return None;
                }
                len -= pad;
                break;
            }
        }
    }
    (len > 0).then_some(len)
}

/// Appends the padded base64 encoding of `src` to `out`.
pub fn encode(src: &[u8], out: &mut Vec<u8>) {
    let symbol = |six: u8| ALPHABET[usize::from(six & 0x3f)];
    for chunk in src.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        out.push(symbol(b[0] >> 2));
        out.push(symbol(b[0] << 4 | b[1] >> 4));
        out.push(if chunk.len() > 1 {
            symbol(b[1] << 2 | b[2] >> 6)
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 { symbol(b[2]) } else { b'=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(src: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; src.len()];
        decode(src, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn round_trips() {
        for src in [&b"f"[..], b"fo", b"foo", b"foob", b"\x00\xff\r\n "] {
            let mut enc = Vec::new();
            encode(src, &mut enc);
            assert_eq!(decoded(&enc).as_deref(), Some(src));
        }
        let mut enc = Vec::new();
        encode(b"foo", &mut enc);
        assert_eq!(enc, b"Zm9v");
    }

    #[test]
    fn memcached_quirks() {
        assert_eq!(decoded(b"Zm9v"), Some(b"foo".to_vec()));
        // Bytes outside the alphabet are skipped.
        assert_eq!(decoded(b"Zm!9v"), Some(b"foo".to_vec()));
        // Decoding stops after the first padded block.
        assert_eq!(decoded(b"Zg==Zm9v"), Some(b"f".to_vec()));
        assert_eq!(decoded(b"Zm9"), None);
        assert_eq!(decoded(b"!!!"), None);
        assert_eq!(decoded(b"Z==="), None);
        // One byte of padding in the middle of a block still cuts one byte.
        assert_eq!(decoded(b"Z=9v"), Some(vec![0x64, 0x0f]));
        // "====" decodes to nothing: a failure.
        assert_eq!(decoded(b"===="), None);
    }
}
