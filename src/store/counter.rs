//! Items used as counters by `incr` and `decr`.

/// The number stored in an item, if it holds one.
///
/// Read as memcached reads it with `strtoull` (`safe_strtoull`): leading C
/// whitespace, an optional sign (a minus only on zero), digits, and then the
/// end, whitespace or a NUL. A shrinking number is padded with spaces in
/// place, so trailing spaces are common.
pub fn parse(data: &[u8]) -> Option<u64> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = data.iter().position(|b| !is_space(b))?;
    let (negative, rest) = match data[start] {
        b'+' => (false, &data[start + 1..]),
        b'-' => (true, &data[start + 1..]),
        _ => (false, &data[start..]),
    };
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 || (end < rest.len() && !(is_space(&rest[end]) || rest[end] == 0)) {
        return None;
    }
    let value = rest[..end].iter().try_fold(0u64, |value, &b| {
        value.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })?;
    (!negative || value == 0).then_some(value)
}

/// Writes `value` over `data` in place if it fits, padding with spaces as
/// memcached does, and says whether it fitted.
pub fn overwrite(data: &mut [u8], value: u64) -> bool {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value).as_bytes();
    if digits.len() > data.len() {
        return false;
    }
    data[..digits.len()].copy_from_slice(digits);
    data[digits.len()..].fill(b' ');
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_values_allow_padding_but_not_junk() {
        assert_eq!(parse(b"42"), Some(42));
        assert_eq!(parse(b"9 "), Some(9));
        assert_eq!(parse(b" 7"), Some(7));
        assert_eq!(parse(b"12abc"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"99999999999999999999"), None);
        assert_eq!(parse(b"+5"), Some(5));
        assert_eq!(parse(b"\x0b7"), Some(7));
        assert_eq!(parse(b"7\0"), Some(7));
        assert_eq!(parse(b"000000000000000000009"), Some(9));
        assert_eq!(parse(b"-5"), None);
        assert_eq!(parse(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn shrinking_numbers_are_space_padded() {
        let mut data = *b"10";
        assert!(overwrite(&mut data, 9));
        assert_eq!(&data, b"9 ");
        assert!(!overwrite(&mut data, 100));
    }
}
