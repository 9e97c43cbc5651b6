//! The store against a reference model of memcached's semantics, its memory
//! bound under a small limit, and its behaviour under concurrent use.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

use kvserve::store::{deadline, item_cost, ArithOutcome, Miss, Store, StoreMode, StoreOutcome};
use proptest::prelude::*;

const MIB: usize = 1024 * 1024;
const START: u32 = 1_700_000_000;
const THIRTY_DAYS: i64 = 60 * 60 * 24 * 30;

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ModelItem {
    value: Vec<u8>,
    flags: u32,
    /// Unix second from which the item is gone; `None`: never.
    expires: Option<u64>,
    /// When the item was last stored anew (what a delayed flush looks at).
    stored_at: u64,
    /// Changes on every modification: what a cas unique stands for.
    version: u64,
}

#[derive(Default)]
struct Model {
    items: HashMap<Vec<u8>, ModelItem>,
    now: u64,
    /// A pending or past `flush_all <delay>`: items stored at or before this
    /// second are gone once `now` reaches it.
    flush_cutoff: Option<u64>,
    versions: u64,
}

/// memcached's reading of an exptime: 0 never, up to 30 days relative, above
/// that an absolute unix time, negative already past.
fn model_expiry(exptime: i64, now: u64) -> Option<u64> {
    match exptime {
        0 => None,
        e if e < 0 => Some(0),
        e if e <= THIRTY_DAYS => Some(now + e as u64),
        e => Some(e as u64),
    }
}

/// An item value read as a number, as memcached's `safe_strtoull`: optional
/// leading white space, an optional sign (a minus only before zero), digits,
/// then the end, white space or a NUL (strtoull stops at the NUL).
fn model_number(value: &[u8]) -> Option<u64> {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c);
    let start = value.iter().position(|b| !space(b))?;
    let (negative, rest) = match value[start] {
        b'+' => (false, &value[start + 1..]),
        b'-' => (true, &value[start + 1..]),
        _ => (false, &value[start..]),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits < rest.len() && !(space(&rest[digits]) || rest[digits] == 0)) {
        return None;
    }
    let n: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    (!negative || n == 0).then_some(n)
}

impl Model {
    fn new(now: u32) -> Model {
        Model {
            now: u64::from(now),
            ..Model::default()
        }
    }

    fn death(&self, item: &ModelItem) -> Option<Miss> {
        if item.expires.is_some_and(|e| e <= self.now) {
            Some(Miss::Expired)
        } else if self
            .flush_cutoff
            .is_some_and(|c| self.now >= c && item.stored_at <= c)
        {
            Some(Miss::Flushed)
        } else {
            None
        }
    }

    /// The live item under `key`; a dead one is dropped on the way.
    fn find(&mut self, key: &[u8]) -> Result<&mut ModelItem, Miss> {
        let Some(item) = self.items.get(key) else {
            return Err(Miss::Absent);
        };
        if let Some(why) = self.death(item) {
            self.items.remove(key);
            return Err(why);
        }
        Ok(self.items.get_mut(key).unwrap())
    }

    fn next_version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }

    fn put(&mut self, key: &[u8], value: Vec<u8>, flags: u32, expires: Option<u64>) {
        let item = ModelItem {
            value,
            flags,
            expires,
            stored_at: self.now,
            version: self.next_version(),
        };
        self.items.insert(key.to_vec(), item);
    }

    /// `cas_version`: for `Cas`, the version the client's unique stands
    /// for (`None`: a unique the store never issued).
    fn store(
        &mut self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        data: &[u8],
        cas_version: Option<u64>,
    ) -> StoreOutcome {
        let expires = model_expiry(exptime, self.now);
        let existing = self.find(key).ok().map(|item| item.clone());
        match (mode, existing) {
            (StoreMode::Set, _) | (StoreMode::Add, None) | (StoreMode::Replace, Some(_)) => {
                self.put(key, data.to_vec(), flags, expires);
                StoreOutcome::Stored
            }
            (StoreMode::Add, Some(_)) => StoreOutcome::NotStored,
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                StoreOutcome::NotStored
            }
            (StoreMode::Append, Some(old)) => {
                let value = [&old.value[..], data].concat();
                self.put(key, value, old.flags, old.expires);
                StoreOutcome::Stored
            }
            (StoreMode::Prepend, Some(old)) => {
                let value = [data, &old.value[..]].concat();
                self.put(key, value, old.flags, old.expires);
                StoreOutcome::Stored
            }
            (StoreMode::Cas(_), None) => StoreOutcome::NotFound,
            (StoreMode::Cas(_), Some(old)) => {
                if cas_version == Some(old.version) {
                    self.put(key, data.to_vec(), flags, expires);
                    StoreOutcome::Stored
                } else {
                    StoreOutcome::Exists
                }
            }
        }
    }

    fn get(&mut self, key: &[u8], touch: Option<i64>) -> Result<ModelItem, Miss> {
        let now = self.now;
        let item = self.find(key)?;
        if let Some(exptime) = touch {
            item.expires = model_expiry(exptime, now);
        }
        Ok(item.clone())
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        let found = self.find(key).is_ok();
        if found {
            self.items.remove(key);
        }
        found
    }

    fn arithmetic(&mut self, key: &[u8], incr: bool, delta: u64) -> ArithOutcome {
        let now = self.now;
        let version = self.next_version();
        let Ok(item) = self.find(key) else {
            return ArithOutcome::NotFound;
        };
        let Some(value) = model_number(&item.value) else {
            return ArithOutcome::NonNumeric;
        };
        let new = if incr {
            value.wrapping_add(delta)
        } else {
            value.saturating_sub(delta)
        };
        let digits = new.to_string().into_bytes();
        if digits.len() <= item.value.len() {
            // In place, padded with spaces to the old length.
            let len = item.value.len();
            item.value = digits;
            item.value.resize(len, b' ');
        } else {
            // Too long for the item: a new item, with the same flags and expiry.
            item.value = digits;
            item.stored_at = now;
        }
        item.version = version;
        ArithOutcome::Value(new)
    }

    fn touch(&mut self, key: &[u8], exptime: i64) -> bool {
        let now = self.now;
        match self.find(key) {
            Ok(item) => {
                item.expires = model_expiry(exptime, now);
                true
            }
            Err(_) => false,
        }
    }

    fn flush_all(&mut self, delay: i64) {
        if delay <= 0 {
            self.items.clear();
            self.flush_cutoff = None;
        } else {
            let at = model_expiry(delay, self.now).unwrap();
            self.flush_cutoff = Some(at.saturating_sub(1).max(1));
        }
    }

    fn sweep(&mut self) -> usize {
        let dead: Vec<Vec<u8>> = self
            .items
            .iter()
            .filter(|(_, item)| self.death(item).is_some())
            .map(|(key, _)| key.clone())
            .collect();
        for key in &dead {
            self.items.remove(key);
        }
        dead.len()
    }

    fn bytes(&self) -> u64 {
        self.items
            .iter()
            .map(|(k, v)| item_cost(k.len() + v.value.len()) as u64)
            .sum()
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// An exptime, as a form relative to the time it is used at.
#[derive(Clone, Copy, Debug)]
enum Exp {
    Never,
    Relative(i64),
    ThirtyDays,
    /// 30 days and one second: an absolute time, long past.
    JustOverThirtyDays,
    /// An absolute unix time, this many seconds from now.
    Absolute(i64),
    Negative(i64),
}

impl Exp {
    fn at(self, now: u64) -> i64 {
        match self {
            Exp::Never => 0,
            Exp::Relative(s) => s,
            Exp::ThirtyDays => THIRTY_DAYS,
            Exp::JustOverThirtyDays => THIRTY_DAYS + 1,
            Exp::Absolute(offset) => now as i64 + offset,
            Exp::Negative(s) => s,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Plain {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
}

#[derive(Clone, Copy, Debug)]
enum CasPick {
    /// A unique read earlier by `gets` (of this key if there is one).
    Remembered(prop::sample::Index),
    /// A unique the store never issued.
    Bogus(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Store {
        mode: Plain,
        key: usize,
        flags: u32,
        exp: Exp,
        value: Vec<u8>,
    },
    Cas {
        key: usize,
        flags: u32,
        exp: Exp,
        value: Vec<u8>,
        pick: CasPick,
    },
    Get {
        key: usize,
    },
    Gets {
        key: usize,
    },
    Gat {
        key: usize,
        exp: Exp,
    },
    Delete {
        key: usize,
    },
    Arith {
        key: usize,
        incr: bool,
        delta: u64,
    },
    Touch {
        key: usize,
        exp: Exp,
    },
    /// `flush_all`: `Ok(delay)` relative, `Err(offset)` an absolute time.
    Flush {
        delay: Result<i64, i64>,
    },
    Advance {
        seconds: u32,
    },
    Sweep,
}

const KEYS: [&[u8]; 6] = [b"a", b"b", b"counter", b"k:3", b"longer-key-4", b"5"];

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        6 => Just(Exp::Never),
        4 => (1i64..20).prop_map(Exp::Relative),
        1 => Just(Exp::ThirtyDays),
        1 => Just(Exp::JustOverThirtyDays),
        2 => (-5i64..20).prop_map(Exp::Absolute),
        1 => (-1000i64..0).prop_map(Exp::Negative),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        (0u64..1000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..5).prop_map(|n| (u64::MAX - n).to_string()),
        (0u64..100, 0usize..3, 0usize..4).prop_map(|(n, before, after)| format!(
            "{}{n}{}",
            " ".repeat(before),
            " ".repeat(after)
        )),
        (0u64..100).prop_map(|n| format!("{n}\r\n")),
    ]
    .prop_map(String::into_bytes);
    // Not numbers: letters, digits followed by junk, white space only.
    let text = prop_oneof![
        prop::collection::vec(
            prop_oneof![b'a'..=b'z', Just(b'\r'), Just(b'\n'), Just(0u8)],
            0..12
        ),
        (0u64..100).prop_map(|n| format!("{n}x").into_bytes()),
        Just(b"  ".to_vec()),
        Just(Vec::new()),
    ];
    prop_oneof![3 => number, 2 => text]
}

fn delta() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..100,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop::sample::select(vec![
        Plain::Set,
        Plain::Add,
        Plain::Replace,
        Plain::Append,
        Plain::Prepend,
    ]);
    let pick = prop_oneof![
        4 => any::<prop::sample::Index>().prop_map(CasPick::Remembered),
        1 => any::<u8>().prop_map(CasPick::Bogus),
    ];
    prop_oneof![
        8 => (mode, key(), any::<u32>(), exp(), value())
            .prop_map(|(mode, key, flags, exp, value)| Op::Store { mode, key, flags, exp, value }),
        3 => (key(), any::<u32>(), exp(), value(), pick)
            .prop_map(|(key, flags, exp, value, pick)| Op::Cas { key, flags, exp, value, pick }),
        4 => key().prop_map(|key| Op::Get { key }),
        4 => key().prop_map(|key| Op::Gets { key }),
        1 => (key(), exp()).prop_map(|(key, exp)| Op::Gat { key, exp }),
        2 => key().prop_map(|key| Op::Delete { key }),
        4 => (key(), any::<bool>(), delta())
            .prop_map(|(key, incr, delta)| Op::Arith { key, incr, delta }),
        2 => (key(), exp()).prop_map(|(key, exp)| Op::Touch { key, exp }),
        1 => prop_oneof![
            2 => (-2i64..1).prop_map(Ok),
            3 => (1i64..12).prop_map(Ok),
            1 => (1i64..12).prop_map(Err),
        ]
        .prop_map(|delay| Op::Flush { delay }),
        4 => prop_oneof![
            6 => 0u32..4,
            2 => 4u32..25,
            1 => Just(THIRTY_DAYS as u32),
        ]
        .prop_map(|seconds| Op::Advance { seconds }),
        1 => Just(Op::Sweep),
    ]
}

/// A cas unique seen by `gets`, and the model version it stands for.
#[derive(Clone, Copy, Debug)]
struct Remembered {
    key: usize,
    unique: u64,
    version: u64,
}

/// Runs `ops` on a store and the model side by side, checking every answer.
fn check_against_model(ops: &[Op]) -> Result<(), TestCaseError> {
    let store = Store::new(256 * MIB, MIB);
    let mut model = Model::new(START);
    let mut now = START;
    let mut remembered: Vec<Remembered> = Vec::new();
    // Every unique handed out, with the (key, version) it named.
    let mut uniques: HashMap<u64, (usize, u64)> = HashMap::new();

    for (step, op) in ops.iter().enumerate() {
        let t = u64::from(now);
        match *op {
            Op::Store {
                mode,
                key,
                flags,
                exp,
                ref value,
            } => {
                let mode = match mode {
                    Plain::Set => StoreMode::Set,
                    Plain::Add => StoreMode::Add,
                    Plain::Replace => StoreMode::Replace,
                    Plain::Append => StoreMode::Append,
                    Plain::Prepend => StoreMode::Prepend,
                };
                let exptime = exp.at(t);
                let got = store.store(mode, KEYS[key], flags, deadline(exptime, now), value, now);
                let want = model.store(mode, KEYS[key], flags, exptime, value, None);
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::Cas {
                key,
                flags,
                exp,
                ref value,
                pick,
            } => {
                let (unique, version) = match pick {
                    CasPick::Remembered(index) if !remembered.is_empty() => {
                        let same: Vec<&Remembered> =
                            remembered.iter().filter(|r| r.key == key).collect();
                        let r = if same.is_empty() {
                            *index.get(&remembered)
                        } else {
                            **index.get(&same)
                        };
                        (r.unique, Some(r.version))
                    }
                    CasPick::Remembered(_) => (u64::MAX, None),
                    CasPick::Bogus(n) => (u64::MAX - u64::from(n), None),
                };
                let exptime = exp.at(t);
                let got = store.store(
                    StoreMode::Cas(unique),
                    KEYS[key],
                    flags,
                    deadline(exptime, now),
                    value,
                    now,
                );
                let want = model.store(
                    StoreMode::Cas(unique),
                    KEYS[key],
                    flags,
                    exptime,
                    value,
                    version,
                );
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::Get { key } | Op::Gets { key } | Op::Gat { key, .. } => {
                let touch = match *op {
                    Op::Gat { exp, .. } => Some(exp.at(t)),
                    _ => None,
                };
                let got = store.get(KEYS[key], touch.map(|e| deadline(e, now)), now, |item| {
                    (item.value.to_vec(), item.flags, item.cas, item.deadline)
                });
                let want = model.get(KEYS[key], touch);
                match (got, want) {
                    (Ok((value, flags, unique, deadline)), Ok(item)) => {
                        prop_assert_eq!(&value, &item.value, "step {}: {:?}", step, op);
                        prop_assert_eq!(flags, item.flags, "step {}: {:?}", step, op);
                        match item.expires {
                            None => prop_assert_eq!(deadline, 0, "step {}", step),
                            Some(0) => prop_assert!(deadline != 0 && deadline <= now),
                            Some(e) => prop_assert_eq!(u64::from(deadline), e, "step {}", step),
                        }
                        // One unique per item version, and never reused.
                        let named = (key, item.version);
                        let previous = *uniques.entry(unique).or_insert(named);
                        prop_assert_eq!(previous, named, "step {}: unique {} reused", step, unique);
                        if matches!(op, Op::Gets { .. }) {
                            remembered.push(Remembered {
                                key,
                                unique,
                                version: item.version,
                            });
                        }
                    }
                    (Err(got), Err(want)) => {
                        prop_assert_eq!(got, want, "step {}: {:?}", step, op)
                    }
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: {op:?}: store {got:?}, model {want:?}"
                        )))
                    }
                }
            }
            Op::Delete { key } => {
                prop_assert_eq!(
                    store.delete(KEYS[key], now),
                    model.delete(KEYS[key]),
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            Op::Arith { key, incr, delta } => {
                let got = store.arithmetic(KEYS[key], incr, delta, now);
                let want = model.arithmetic(KEYS[key], incr, delta);
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::Touch { key, exp } => {
                let exptime = exp.at(t);
                prop_assert_eq!(
                    store.touch(KEYS[key], deadline(exptime, now), now),
                    model.touch(KEYS[key], exptime),
                    "step {}: {:?}",
                    step,
                    op
                );
            }
            Op::Flush { delay } => {
                let delay = match delay {
                    Ok(relative) => relative,
                    Err(offset) => t as i64 + offset,
                };
                store.flush_all(delay, now);
                model.flush_all(delay);
            }
            Op::Advance { seconds } => {
                now += seconds;
                model.now = u64::from(now);
            }
            Op::Sweep => {
                prop_assert_eq!(store.sweep(now), model.sweep(), "step {}", step);
            }
        }
        let stats = store.stats();
        prop_assert_eq!(
            stats.curr_items,
            model.items.len() as u64,
            "step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(stats.bytes, model.bytes(), "step {}: {:?}", step, op);
        prop_assert_eq!(stats.evictions, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        check_against_model(&ops)?;
    }
}

// ---------------------------------------------------------------------------
// Fixed cases of the model's rules, each a failure the property could find
// ---------------------------------------------------------------------------

fn read(store: &Store, key: &[u8], now: u32) -> Result<(Vec<u8>, u32, u64), Miss> {
    store.get(key, None, now, |item| {
        (item.value.to_vec(), item.flags, item.cas)
    })
}

fn set(store: &Store, key: &[u8], value: &[u8], exptime: i64, now: u32) -> StoreOutcome {
    store.store(StoreMode::Set, key, 0, deadline(exptime, now), value, now)
}

#[test]
fn exptime_forms() {
    let store = Store::new(64 * MIB, MIB);
    let now = START;
    assert_eq!(set(&store, b"never", b"v", 0, now), StoreOutcome::Stored);
    assert_eq!(set(&store, b"rel", b"v", 10, now), StoreOutcome::Stored);
    assert_eq!(
        set(&store, b"month", b"v", THIRTY_DAYS, now),
        StoreOutcome::Stored
    );
    assert_eq!(
        set(&store, b"past", b"v", THIRTY_DAYS + 1, now),
        StoreOutcome::Stored
    );
    assert_eq!(
        set(&store, b"abs", b"v", i64::from(now) + 5, now),
        StoreOutcome::Stored
    );
    assert_eq!(set(&store, b"neg", b"v", -1, now), StoreOutcome::Stored);
    assert_eq!(read(&store, b"past", now), Err(Miss::Expired));
    assert_eq!(read(&store, b"neg", now), Err(Miss::Expired));
    assert!(read(&store, b"rel", now + 9).is_ok());
    assert!(read(&store, b"abs", now + 4).is_ok());
    assert_eq!(read(&store, b"abs", now + 5), Err(Miss::Expired));
    assert_eq!(read(&store, b"rel", now + 10), Err(Miss::Expired));
    // Once found dead, an item is gone.
    assert_eq!(read(&store, b"rel", now + 10), Err(Miss::Absent));
    let month = now + THIRTY_DAYS as u32;
    assert!(read(&store, b"month", month - 1).is_ok());
    assert_eq!(read(&store, b"month", month), Err(Miss::Expired));
    assert!(read(&store, b"never", u32::MAX - 1).is_ok());
}

#[test]
fn arithmetic_wraps_floors_and_pads() {
    let store = Store::new(64 * MIB, MIB);
    let now = START;
    store.store(
        StoreMode::Set,
        b"n",
        7,
        deadline(100, now),
        b"18446744073709551614",
        now,
    );
    assert_eq!(store.arithmetic(b"n", true, 3, now), ArithOutcome::Value(1));
    assert_eq!(read(&store, b"n", now).unwrap().0, b"1                   ");
    assert_eq!(
        store.arithmetic(b"n", false, 5, now),
        ArithOutcome::Value(0)
    );
    set(&store, b"m", b"100", 0, now);
    assert_eq!(
        store.arithmetic(b"m", false, 91, now),
        ArithOutcome::Value(9)
    );
    assert_eq!(read(&store, b"m", now).unwrap().0, b"9  ");
    assert_eq!(
        store.arithmetic(b"m", true, 991, now),
        ArithOutcome::Value(1000)
    );
    assert_eq!(read(&store, b"m", now).unwrap().0, b"1000");
    // A grown counter keeps the flags and expiry of the old item.
    assert_eq!(
        store.arithmetic(b"n", true, 12345, now),
        ArithOutcome::Value(12345)
    );
    assert_eq!(read(&store, b"n", now).unwrap().1, 7);
    assert_eq!(read(&store, b"n", now + 100), Err(Miss::Expired));
    // incr gives the item a new cas unique.
    let before = read(&store, b"m", now).unwrap().2;
    store.arithmetic(b"m", true, 0, now);
    assert_ne!(read(&store, b"m", now).unwrap().2, before);
    set(&store, b"t", b"12abc", 0, now);
    assert_eq!(
        store.arithmetic(b"t", true, 1, now),
        ArithOutcome::NonNumeric
    );
    assert_eq!(
        store.arithmetic(b"none", true, 1, now),
        ArithOutcome::NotFound
    );
}

/// memcached reads a counter with `strtoull`, which takes a sign, stops at a
/// NUL, skips any C white space (vertical tab included) and reads any
/// number of leading zeros.
#[test]
fn counters_are_read_as_memcached_strtoull_reads_them() {
    let store = Store::new(64 * MIB, MIB);
    let now = START;
    let cases: [(&[u8], u64); 4] = [
        (b"+5", 6),
        (b"\x0b7", 8),
        (b"7\0", 8),
        (b"000000000000000000009", 10),
    ];
    let mut wrong = Vec::new();
    for (value, expected) in cases {
        set(&store, b"c", value, 0, now);
        let got = store.arithmetic(b"c", true, 1, now);
        if got != ArithOutcome::Value(expected) {
            wrong.push(format!(
                "incr 1 on {:?}: {got:?}, memcached {expected}",
                String::from_utf8_lossy(value)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn append_and_prepend_keep_flags_and_expiry() {
    let store = Store::new(64 * MIB, MIB);
    let now = START;
    store.store(StoreMode::Set, b"k", 42, deadline(10, now), b"mid", now);
    let later = now + 5;
    let d = deadline(1000, later);
    assert_eq!(
        store.store(StoreMode::Append, b"k", 1, d, b">", later),
        StoreOutcome::Stored
    );
    assert_eq!(
        store.store(StoreMode::Prepend, b"k", 2, d, b"<", later),
        StoreOutcome::Stored
    );
    assert_eq!(read(&store, b"k", later).unwrap().0, b"<mid>");
    assert_eq!(read(&store, b"k", later).unwrap().1, 42);
    assert_eq!(read(&store, b"k", now + 10), Err(Miss::Expired));
}

#[test]
fn cas_uniques() {
    let store = Store::new(64 * MIB, MIB);
    let now = START;
    assert_eq!(
        store.store(StoreMode::Cas(1), b"k", 0, 0, b"x", now),
        StoreOutcome::NotFound
    );
    set(&store, b"k", b"a", 0, now);
    let unique = read(&store, b"k", now).unwrap().2;
    // Touching does not change the unique; storing does.
    assert!(store.touch(b"k", 0, now));
    assert_eq!(read(&store, b"k", now).unwrap().2, unique);
    assert_eq!(
        store.store(StoreMode::Cas(unique), b"k", 0, 0, b"b", now),
        StoreOutcome::Stored
    );
    assert_eq!(
        store.store(StoreMode::Cas(unique), b"k", 0, 0, b"c", now),
        StoreOutcome::Exists
    );
    assert_eq!(read(&store, b"k", now).unwrap().0, b"b");
    // Uniques differ across keys and shards.
    let mut seen = std::collections::HashSet::new();
    for i in 0..1000 {
        let key = format!("key{i}");
        set(&store, key.as_bytes(), b"v", 0, now);
        assert!(seen.insert(read(&store, key.as_bytes(), now).unwrap().2));
    }
}

#[test]
fn delayed_flush_invalidates_what_was_stored_by_its_cutoff() {
    let store = Store::new(64 * MIB, MIB);
    let now = START;
    set(&store, b"old", b"v", 0, now);
    store.flush_all(10, now);
    // Stored after the command but before the cutoff (now + 9): flushed too.
    set(&store, b"mid", b"v", 0, now + 9);
    assert!(read(&store, b"old", now + 8).is_ok());
    assert_eq!(read(&store, b"old", now + 9), Err(Miss::Flushed));
    assert_eq!(read(&store, b"mid", now + 9), Err(Miss::Flushed));
    set(&store, b"new", b"v", 0, now + 10);
    assert!(read(&store, b"new", now + 1000).is_ok());
    // An immediate flush cancels a pending delayed one.
    set(&store, b"x", b"v", 0, now + 1000);
    store.flush_all(100, now + 1000);
    store.flush_all(0, now + 1000);
    set(&store, b"y", b"v", 0, now + 1000);
    assert_eq!(read(&store, b"x", now + 1000), Err(Miss::Absent));
    assert_eq!(read(&store, b"new", now + 1000), Err(Miss::Absent));
    assert!(read(&store, b"y", now + 2000).is_ok());
    assert_eq!(store.stats().curr_items, 1);
    assert_eq!(store.sweep(now + 2000), 0);
}

// ---------------------------------------------------------------------------
// Memory bound
// ---------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const LIMIT: usize = 8 * MIB;
const MAX_ITEM: usize = MIB;

/// Random bytes that values are cut from.
fn pool() -> Vec<u8> {
    let mut rng = Rng::new(7);
    (0..2 * MAX_ITEM).map(|_| rng.next() as u8).collect()
}

/// The value written as write `n` of writer `writer`: its size and where in
/// the pool it starts are functions of both, so a reader can check it.
fn value_of(pool: &[u8], writer: u64, n: u64) -> &[u8] {
    let mut rng = Rng::new(writer << 32 | n);
    let size = if rng.below(8) == 0 {
        MAX_ITEM / 2 + rng.below(MAX_ITEM / 2 - 300)
    } else {
        1 + rng.below(256 * 1024)
    };
    let start = rng.below(pool.len() - size);
    &pool[start..start + size]
}

fn bound(store: &Store) -> u64 {
    (LIMIT + store.shard_count() * MAX_ITEM) as u64
}

#[test]
fn memory_stays_bounded_and_recent_keys_survive() {
    let store = Store::new(LIMIT, MAX_ITEM);
    let pool = pool();
    let now = START;
    let part = LIMIT / store.shard_count();
    let mut written: Vec<(String, usize)> = Vec::new();
    let mut total = 0;
    let mut n = 0;
    while total < 10 * LIMIT {
        let key = format!("key:{n}");
        let value = value_of(&pool, 0, n);
        assert_eq!(
            set(&store, key.as_bytes(), value, 0, now),
            StoreOutcome::Stored
        );
        total += value.len();
        let stats = store.stats();
        assert!(
            stats.bytes <= bound(&store),
            "{} bytes after write {n}, bound {}",
            stats.bytes,
            bound(&store)
        );
        assert_eq!(read(&store, key.as_bytes(), now).unwrap().0, value);
        written.push((key, value.len()));
        n += 1;
    }
    let stats = store.stats();
    assert!(stats.evictions > 0);
    assert_eq!(stats.total_items, n);
    assert_eq!(stats.curr_items + stats.evictions, n);
    // The latest writes that fit in one shard's part cannot have been evicted.
    let mut recent = 0;
    let mut size = 0;
    for (i, (key, len)) in written.iter().enumerate().rev() {
        size += item_cost(key.len() + len);
        if size > part {
            break;
        }
        let got = read(&store, key.as_bytes(), now);
        assert_eq!(
            got.map(|r| r.0).as_deref(),
            Ok(value_of(&pool, 0, i as u64)),
            "{key}"
        );
        recent += 1;
    }
    assert!(recent >= 1);
    // Shrinking the limit evicts at once.
    store.set_memory_limit(LIMIT / 2);
    assert!(store.stats().bytes <= (LIMIT / 2 + store.shard_count() * MAX_ITEM) as u64);
}

/// What `-m` buys in small items: a 10-byte value under a 9-byte key costs
/// the store at most 84 bytes of its limit all told (the item's allocation,
/// slot and share of the index; 77 here). With an entry beside a separate
/// key-and-value allocation it was 107.
#[test]
fn a_small_item_costs_at_most_84_bytes_of_the_limit() {
    let limit = 8 * MIB;
    let store = Store::new(limit, MAX_ITEM);
    for n in 0..300_000 {
        let key = format!("k:{n:07}");
        set(&store, key.as_bytes(), b"0123456789", 0, START);
    }
    let stats = store.stats();
    assert!(stats.evictions > 0, "the store was filled past its limit");
    assert!(stats.held <= limit as u64, "{} held", stats.held);
    let per_item = limit as f64 / stats.curr_items as f64;
    assert!(
        per_item <= 84.0,
        "{per_item:.1} bytes of the limit per item ({} items)",
        stats.curr_items
    );
}

#[test]
fn memory_stays_bounded_under_concurrent_writers() {
    let store = Arc::new(Store::new(LIMIT, MAX_ITEM));
    let pool = Arc::new(pool());
    let threads = 4;
    let per_thread = 10 * LIMIT / threads;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (store, pool, start) = (Arc::clone(&store), Arc::clone(&pool), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let (mut n, mut total) = (0u64, 0);
                while total < per_thread {
                    let value = value_of(&pool, t + 1, n);
                    let key = format!("t{t}:{n}");
                    assert_eq!(
                        set(&store, key.as_bytes(), value, 0, START),
                        StoreOutcome::Stored
                    );
                    let bytes = store.stats().bytes;
                    assert!(
                        bytes <= bound(&store),
                        "{bytes} bytes, bound {}",
                        bound(&store)
                    );
                    total += value.len();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let counts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let stats = store.stats();
    assert!(stats.evictions > 0);
    assert_eq!(stats.total_items, counts.iter().sum::<u64>());
    assert_eq!(stats.curr_items + stats.evictions, stats.total_items);
    // Whatever survived is intact.
    let mut survivors = 0;
    for (t, &count) in counts.iter().enumerate() {
        for n in 0..count {
            let key = format!("t{t}:{n}");
            if let Ok((value, _, _)) = read(&store, key.as_bytes(), START) {
                assert_eq!(value, value_of(&pool, t as u64 + 1, n), "{key}");
                survivors += 1;
            }
        }
    }
    assert_eq!(survivors, stats.curr_items);
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

/// An 8-byte block naming its writer, so torn or mixed values show.
fn block(thread: u64, n: u64) -> Vec<u8> {
    format!("[{thread}{:05}]", n % 100_000).into_bytes()
}

fn assert_blocks(value: &[u8]) {
    assert_eq!(value.len() % 8, 0, "{:?}", String::from_utf8_lossy(value));
    for b in value.chunks(8) {
        assert!(
            b[0] == b'[' && b[7] == b']' && b[1..7].iter().all(u8::is_ascii_digit),
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn concurrent_random_operations_stay_consistent() {
    let store = Arc::new(Store::new(64 * MIB, MIB));
    let now = START;
    set(&store, b"counter", b"0", 0, now);
    set(&store, b"cas-counter", b"0", 0, now);
    set(&store, b"down", b"1000000", 0, now);
    let threads = 4u64;
    let rounds = 3000u64;
    let start = Arc::new(Barrier::new(threads as usize));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            thread::spawn(move || {
                let mut rng = Rng::new(100 + t);
                let (mut added, mut cas_done, mut cas_retries) = (0u64, 0u64, 0u64);
                start.wait();
                for i in 0..rounds {
                    let ArithOutcome::Value(_) = store.arithmetic(b"counter", true, t + 1, now)
                    else {
                        panic!("counter lost");
                    };
                    assert!(matches!(
                        store.arithmetic(b"down", false, 1, now),
                        ArithOutcome::Value(_)
                    ));
                    let key = format!("shared{}", rng.below(12));
                    let key = key.as_bytes();
                    let b = block(t, i);
                    match rng.below(10) {
                        0 => {
                            set(&store, key, &b, 0, now);
                        }
                        1 => {
                            store.store(StoreMode::Append, key, 0, 0, &b, now);
                        }
                        2 => {
                            store.store(StoreMode::Prepend, key, 0, 0, &b, now);
                        }
                        3 => {
                            store.store(StoreMode::Add, key, 0, 0, &b, now);
                        }
                        4 => {
                            store.delete(key, now);
                        }
                        5 => {
                            if let Ok((_, _, unique)) = read(&store, key, now) {
                                store.store(StoreMode::Cas(unique), key, 0, 0, &b, now);
                            }
                        }
                        6 => {
                            store.touch(key, 0, now);
                        }
                        7 => assert_ne!(
                            store.arithmetic(key, true, 1, now),
                            ArithOutcome::Value(1),
                            "blocks are not numbers"
                        ),
                        _ => {
                            if let Ok((value, _, _)) = read(&store, key, now) {
                                assert_blocks(&value);
                            }
                        }
                    }
                    let own = format!("own{t}:{i}");
                    if i % 3 == 0 {
                        assert_eq!(
                            store.store(StoreMode::Add, own.as_bytes(), 0, 0, &b, now),
                            StoreOutcome::Stored
                        );
                        added += 1;
                    }
                    if i % 10 == 0 {
                        // A cas increment loop: read, compute, retry on EXISTS.
                        loop {
                            let (value, _, unique) = read(&store, b"cas-counter", now).unwrap();
                            let n: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
                            let next = (n + 1).to_string();
                            match store.store(
                                StoreMode::Cas(unique),
                                b"cas-counter",
                                0,
                                0,
                                next.as_bytes(),
                                now,
                            ) {
                                StoreOutcome::Stored => break,
                                StoreOutcome::Exists => cas_retries += 1,
                                other => panic!("cas increment: {other:?}"),
                            }
                        }
                        cas_done += 1;
                    }
                }
                (added, cas_done, cas_retries)
            })
        })
        .collect();
    let results: Vec<(u64, u64, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let number = |key: &[u8]| -> u64 {
        let value = read(&store, key, now).unwrap().0;
        std::str::from_utf8(&value)
            .unwrap()
            .trim_end()
            .parse()
            .unwrap()
    };
    let increments: u64 = (1..=threads).sum::<u64>() * rounds;
    assert_eq!(number(b"counter"), increments);
    assert_eq!(number(b"down"), 1_000_000 - threads * rounds);
    let cas_total: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(number(b"cas-counter"), cas_total);

    // Every key counted by the store is readable, and no more.
    let mut shared = 0;
    for i in 0..12 {
        if let Ok((value, _, _)) = read(&store, format!("shared{i}").as_bytes(), now) {
            assert_blocks(&value);
            shared += 1;
        }
    }
    let mut own = 0;
    for t in 0..threads {
        for i in (0..rounds).step_by(3) {
            let value = read(&store, format!("own{t}:{i}").as_bytes(), now)
                .unwrap()
                .0;
            assert_eq!(value, block(t, i));
            own += 1;
        }
    }
    let added: u64 = results.iter().map(|r| r.0).sum();
    assert_eq!(own, added);
    assert_eq!(store.stats().curr_items, 3 + shared + own);
    assert_eq!(store.stats().evictions, 0);
}
