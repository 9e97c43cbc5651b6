//! Decimal numbers as memcached reads them: strictly, with no silent wrap.

/// Reads an unsigned decimal token of at most `max`.
fn parse_unsigned(token: &[u8], max: u64) -> Option<u64> {
    if token.is_empty() || token.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in token {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (value <= max).then_some(value)
}

/// A 32-bit unsigned token (`flags`, `verbosity`).
pub(crate) fn parse_u32(token: &[u8]) -> Option<u32> {
    parse_unsigned(token, u64::from(u32::MAX)).map(|v| v as u32)
}

/// A 64-bit unsigned token (`cas unique`, `incr` delta).
pub(crate) fn parse_u64(token: &[u8]) -> Option<u64> {
    parse_unsigned(token, u64::MAX)
}

/// A 32-bit signed token (`exptime`, `<bytes>`), as memcached's `safe_strtol`.
pub(crate) fn parse_i32(token: &[u8]) -> Option<i64> {
    let (negative, digits) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let magnitude = parse_unsigned(digits, 1 << 31)? as i64;
    let value = if negative { -magnitude } else { magnitude };
    (value <= i64::from(i32::MAX)).then_some(value)
}

/// A meta flag's time (`T`, `N`, `R`), as memcached's `safe_strtol`
/// reads it: `strtol` (leading whitespace, a sign, digits within 64 bits,
/// then the end or whitespace) and then truncated to 32 bits, so that
/// `T4294967396` is 100. The classic commands are stricter.
pub(crate) fn parse_strtol_i32(token: &[u8]) -> Option<i64> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = token.iter().position(|b| !is_space(b))?;
    let (negative, rest) = match token[start] {
        b'-' => (true, &token[start + 1..]),
        b'+' => (false, &token[start + 1..]),
        _ => (false, &token[start..]),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits).is_some_and(|b| !is_space(b)) {
        return None;
    }
    let magnitude = rest[..digits].iter().try_fold(0i128, |value, &b| {
        let value = value * 10 + i128::from(b - b'0');
        (value <= 1 << 63).then_some(value)
    })?;
    let value = if negative { -magnitude } else { magnitude };
    let long = i64::try_from(value).ok()?;
    Some(i64::from(long as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_tokens_are_strict() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b"1a"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }

    #[test]
    fn meta_times_read_as_memcached() {
        assert_eq!(parse_strtol_i32(b"100"), Some(100));
        assert_eq!(parse_strtol_i32(b"+100"), Some(100));
        assert_eq!(parse_strtol_i32(b"-1"), Some(-1));
        assert_eq!(parse_strtol_i32(b"2147483648"), Some(i64::from(i32::MIN)));
        assert_eq!(parse_strtol_i32(b"4294967396"), Some(100));
        assert_eq!(parse_strtol_i32(b"9223372036854775807"), Some(-1));
        assert_eq!(parse_strtol_i32(b"9223372036854775808"), None);
        assert_eq!(parse_strtol_i32(b"-9223372036854775808"), Some(0));
        assert_eq!(parse_strtol_i32(b""), None);
        assert_eq!(parse_strtol_i32(b"-"), None);
        assert_eq!(parse_strtol_i32(b"1.5"), None);
        assert_eq!(parse_strtol_i32(b"5\t"), Some(5));
    }

    #[test]
    fn signed_tokens_fit_32_bits() {
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483647"), Some(i64::from(i32::MAX)));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"-2147483648"), Some(i64::from(i32::MIN)));
        assert_eq!(parse_i32(b"4294967295"), None);
        assert_eq!(parse_i32(b"abc"), None);
        assert_eq!(parse_i32(b"-"), None);
    }
}
