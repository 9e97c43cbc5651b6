//! Expiration times as memcached reads them, and the clock they are read by.

use std::time::{SystemTime, UNIX_EPOCH};

/// Up to this many seconds an exptime is relative to now; above, it is an
/// absolute unix time (memcached's `REALTIME_MAXDELTA`, 30 days).
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// When an item stops being served, in unix seconds; 0 means never.
pub type Deadline = u32;

/// The current unix time in seconds: the clock every expiry is measured by.
/// The store takes `now` as an argument so that tests can move time.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Turns a protocol exptime into a deadline: 0 is never, up to 30 days is
/// seconds from now, more is an absolute unix time, negative is already past.
pub fn deadline(exptime: i64, now: u32) -> Deadline {
    match exptime {
        0 => 0,
        e if e < 0 => 1,
        e if e > MAX_RELATIVE_EXPTIME => e.clamp(1, i64::from(u32::MAX)) as u32,
        e => now.saturating_add(e as u32),
    }
}

/// Whether an item with this deadline is past it at `now`.
pub fn is_past(deadline: Deadline, now: u32) -> bool {
    deadline != 0 && deadline <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_forms() {
        let now = 1_700_000_000;
        assert_eq!(deadline(0, now), 0);
        assert_eq!(deadline(10, now), now + 10);
        assert!(is_past(deadline(-1, now), now));
        assert_eq!(deadline(i64::from(now) + 5, now), now + 5);
        assert!(is_past(deadline(MAX_RELATIVE_EXPTIME + 1, now), now));
        assert!(!is_past(deadline(1, now), now));
        assert!(is_past(deadline(1, now), now + 1));
    }
}
