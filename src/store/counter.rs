//! Items used as counters by `incr` and `decr`: read as memcached reads
//! them (`protocol`'s `parse_strtoull`), written back in place.

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
    fn shrinking_numbers_are_space_padded() {
        let mut data = *b"10";
        assert!(overwrite(&mut data, 9));
        assert_eq!(&data, b"9 ");
        assert!(!overwrite(&mut data, 100));
    }
}
