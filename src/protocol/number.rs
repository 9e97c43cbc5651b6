//! Decimal numbers as memcached reads them: strictly, with no silent wrap.

/// Reads an unsigned decimal token of at most `max`.
fn parse_unsigned(token: &[u8], max: u64) -> Option<u64> {
    if token.is_empty() || token.len() > 20 {
        return None;
    }
    decimal(token).filter(|&value| value <= max)
}

/// The value of a run of decimal digits; `None` if a byte is not a digit
/// or the value does not fit 64 bits.
fn decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// A number as the C library's `strtol` and `strtoull` read it, which
/// memcached checks after them: leading C whitespace, an optional sign,
/// at least one digit, then the end of the token or a byte `ends_number`
/// accepts. Whether it is negative, and its digits.
fn c_number(token: &[u8], ends_number: impl Fn(u8) -> bool) -> Option<(bool, &[u8])> {
    let start = token.iter().position(|&b| !is_c_space(b))?;
    let (negative, rest) = match token[start] {
        b'-' => (true, &token[start + 1..]),
        b'+' => (false, &token[start + 1..]),
        _ => (false, &token[start..]),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits).is_some_and(|&b| !ends_number(b)) {
        return None;
    }
    Some((negative, &rest[..digits]))
}

/// C's `isspace`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
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
    let (negative, digits) = c_number(token, is_c_space)?;
    let magnitude = digits.iter().try_fold(0i128, |value, &b| {
        let value = value * 10 + i128::from(b - b'0');
        (value <= 1 << 63).then_some(value)
    })?;
    let value = if negative { -magnitude } else { magnitude };
    let long = i64::try_from(value).ok()?;
    Some(i64::from(long as i32))
}

/// A number as memcached reads it with `strtoull` (`safe_strtoull`):
/// leading C whitespace, an optional sign (a minus only on zero), digits,
/// and then the end, whitespace or a NUL. What a counter item holds (a
/// shrinking number is padded with spaces in place, so trailing spaces are
/// common), and the meta flags `F`, `C`, `J`, `D`.
pub(crate) fn parse_strtoull(token: &[u8]) -> Option<u64> {
    let (negative, digits) = c_number(token, |b| is_c_space(b) || b == 0)?;
    let value = decimal(digits)?;
    (!negative || value == 0).then_some(value)
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
    fn counter_values_allow_padding_but_not_junk() {
        assert_eq!(parse_strtoull(b"42"), Some(42));
        assert_eq!(parse_strtoull(b"9 "), Some(9));
        assert_eq!(parse_strtoull(b" 7"), Some(7));
        assert_eq!(parse_strtoull(b"12abc"), None);
        assert_eq!(parse_strtoull(b""), None);
        assert_eq!(parse_strtoull(b"99999999999999999999"), None);
        assert_eq!(parse_strtoull(b"+5"), Some(5));
        assert_eq!(parse_strtoull(b"\x0b7"), Some(7));
        assert_eq!(parse_strtoull(b"7\0"), Some(7));
        assert_eq!(parse_strtoull(b"000000000000000000009"), Some(9));
        assert_eq!(parse_strtoull(b"-5"), None);
        assert_eq!(parse_strtoull(b"-0"), Some(0));
        assert_eq!(parse_strtoull(b"18446744073709551615"), Some(u64::MAX));
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
