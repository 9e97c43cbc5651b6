//! Real memcached clients against every pattern: libmemcached's conformance
//! checker `memccapable -a` (Debian package libmemcached-tools) and
//! pymemcache (PyPI). `.ci/run` installs both.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{KvServer, PATTERNS};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}); `bash .ci/run` installs it (libmemcached-tools, pymemcache)")
    })
}

#[test]
fn memccapable_ascii_passes_for_every_pattern() {
    for pattern in PATTERNS {
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
}

#[test]
fn pymemcache_works_with_every_pattern() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pymemcache_check.py");
    for pattern in PATTERNS {
        let mut server = KvServer::start(pattern, &["-t", "2"]);
        let port = server.addr().port().to_string();
        let out = run("python3", &[script.to_str().unwrap(), &port]);
        assert!(
            out.status.success(),
            "{pattern}: pymemcache check failed\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(server.stop().success(), "{pattern}: unclean exit");
    }
}
