//! Fuzz target: `kvserve::protocol::parse` never panics, and feeding a
//! stream whole or in arbitrary chunks (as a connection's reads split it)
//! yields the same requests. The check itself is in `../common/split_check.rs`,
//! which `tests/parser_regressions.rs` runs too; the input layout is
//! documented on `split_check::Case`.
//!
//! Runs on stable Rust (1.95 here; no nightly needed) with `--sanitizer none`:
//! cargo-fuzz then passes only stable `-C` flags (`-Cpasses=sancov-module`,
//! `-Cllvm-args=-sanitizer-coverage-*`). The default `--sanitizer address`
//! adds `-Zsanitizer=address`, which stable rustc refuses unless
//! `RUSTC_BOOTSTRAP=1` is set (with it, that build works too); it buys
//! nothing for this safe-Rust target. From the repository root:
//!
//! ```text
//! cargo install cargo-fuzz                              # once
//! cargo fuzz run parse_splits --sanitizer none \
//!     fuzz/corpus/parse_splits fuzz/seeds -- -max_total_time=1800 -max_len=8192
//! cargo fuzz cmin parse_splits --sanitizer none -- -max_len=8192
//! cargo fuzz run parse_splits --sanitizer none fuzz/artifacts/parse_splits/crash-...  # replay
//! ```
//!
//! The first corpus directory receives new inputs; `fuzz/seeds` holds the
//! committed hand-written seeds (same layout as any input, see
//! `split_check::Case`). The fuzzer stops at the first failing assertion and
//! saves the input under `fuzz/artifacts/parse_splits/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // `Outcome::summary` is only for the regression tests
#[path = "../common/split_check.rs"]
mod split_check;

fuzz_target!(|data: &[u8]| {
    let case = split_check::Case::decode(data);
    split_check::check(&case.limits, case.stream, &case.chunks);
});
