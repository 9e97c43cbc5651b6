//! Real memcached clients against every pattern: libmemcached's conformance
//! checker `memccapable -a` (Debian package libmemcached-tools) and
//! pymemcache (PyPI), including the gat/gats path whose TTL pymemcache's
//! own tests read with the meta command `mg <key> t`. `.ci/run` installs both.

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::KvServer;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}); `bash .ci/run` installs it (libmemcached-tools, pymemcache)")
    })
}

fn memccapable_ascii(pattern: &str) {
    let mut server = KvServer::start(pattern, &["-t", "2"]);
    let port = server.addr().port().to_string();
    let out = run(
        "memccapable",
        &["-h", "127.0.0.1", "-p", &port, "-a", "-t", "5"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("All tests passed"),
        "{pattern}: memccapable failed\n{stdout}\n{stderr}"
    );
    assert!(server.stop().success(), "{pattern}: unclean exit");
}

per_pattern!(memccapable_ascii_passes, super::memccapable_ascii);

/// Runs a pymemcache script from `tests/clients` against `pattern`.
fn pymemcache_script_passes(script: &str, pattern: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut server = KvServer::start(pattern, &["-t", "2"]);
    let port = server.addr().port().to_string();
    let out = run("python3", &[script.to_str().unwrap(), &port]);
    assert!(
        out.status.success(),
        "{pattern}: {} failed\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.stop().success(), "{pattern}: unclean exit");
}

fn pymemcache(pattern: &str) {
    pymemcache_script_passes("pymemcache_check.py", pattern);
}

per_pattern!(pymemcache_works, super::pymemcache);

/// pymemcache's `test_gat_gats` reads the TTL left with `mg <key> t`.
fn pymemcache_gat_gats(pattern: &str) {
    pymemcache_script_passes("pymemcache_gat_check.py", pattern);
}

per_pattern!(pymemcache_gat_gats_ttl_works, super::pymemcache_gat_gats);
