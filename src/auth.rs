//! The users of memcached's ASCII authentication (`-Y`/`--auth-file`): the
//! file as memcached 1.6.18 reads it, the check of a handshake's
//! credentials (the handshake itself is [`crate::protocol::parse_handshake`]'s),
//! and reloading the file on SIGHUP.
//!
//! The file holds one `user:password` line per user: the user is what
//! comes before the first `:`, the password the rest of the line up to a
//! `\r` or the `\n` (so it may hold `:`, and `\r\n` line ends work). A line
//! with no `:`, a blank line among them, refuses the file, as memcached
//! refuses it. Where memcached reads a file differently from what it says
//! without a word, kvserve refuses it instead, naming the line: a line over
//! 254 bytes (memcached cuts it, and ignores every line after it), more than
//! 8 users (memcached ignores the 9th on), a NUL byte (memcached ends the
//! file there). memcached 1.6.18 also drops the last byte of a one-line file
//! without a final newline; kvserve reads the password whole, as memcached
//! does since 1.6.32.

use std::fmt;
use std::io;
use std::sync::{Arc, RwLock};
use std::thread;

use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;
use subtle::{Choice, ConstantTimeEq};

/// The most users memcached reads (its `MAX_ENTRIES`).
const MAX_USERS: usize = 8;
/// The longest line memcached reads whole, before its `\n`: it reads 255
/// bytes at a time, the `\n` among them.
const MAX_LINE: usize = 254;
/// Room for a user or a password, which a line of at most [`MAX_LINE`]
/// bytes bounds: each is compared over all of it.
const FIELD: usize = 256;

/// The auth file named by `-Y` and the users it held when last read: what
/// a connection's handshake is checked against.
pub struct AuthFile {
    path: String,
    users: RwLock<Users>,
}

impl AuthFile {
    /// Reads the file at `path`.
    pub fn load(path: &str) -> Result<AuthFile, LoadError> {
        Ok(AuthFile {
            users: RwLock::new(read(path)?),
            path: path.to_string(),
        })
    }

    /// The path as `-Y` gave it (`stats settings` shows it, as memcached).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many users the file held when last read.
    pub fn user_count(&self) -> usize {
        self.users.read().unwrap().entries.len()
    }

    /// Reads the file again; if it does not load, the users read before
    /// stay.
    pub fn reload(&self) -> Result<(), LoadError> {
        let users = read(&self.path)?;
        *self.users.write().unwrap() = users;
        Ok(())
    }

    /// Whether `user` and `password` are one of the file's users, in a time
    /// that depends on neither their bytes nor which of them was wrong.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        let (user, password) = (Field::new(user), Field::new(password));
        // A lock held for the comparisons only, about a microsecond per
        // user: a reload waits for them, serving never waits for a reload,
        // which reads and parses the file before it takes the lock.
        self.users.read().unwrap().check(&user, &password)
    }

    /// Starts the thread that reloads the file on each SIGHUP, as memcached
    /// does, logging what it read.
    pub fn reload_on_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut signals = Signals::new([SIGHUP])?;
        let auth = Arc::clone(self);
        thread::Builder::new()
            .name("sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    match auth.reload() {
                        Ok(()) => {
                            let users = auth.user_count();
                            tracing::info!("reloaded {} (users: {users})", auth.path);
                        }
                        Err(e) => tracing::error!("{e}; the users read before stay"),
                    }
                }
            })?;
        Ok(())
    }
}

/// Why an auth file did not load, worded as memcached words it, with the
/// line at fault. The line's content is not shown: it may hold a password.
#[derive(Debug)]
pub enum LoadError {
    Open {
        path: String,
        error: io::Error,
    },
    Malformed {
        path: String,
        line: usize,
        why: Malformed,
    },
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    NoColon,
    TooLong,
    Nul,
    TooManyUsers,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, error } => {
                write!(
                    f,
                    "Could not open authfile [{path}] for reading, error {error}"
                )
            }
            LoadError::Malformed { path, line, why } => {
                write!(
                    f,
                    "Authfile [{path}] has a malformed entry. Should be 'user:password': line {line} "
                )?;
                f.write_str(match why {
                    Malformed::NoColon => "has no ':'",
                    Malformed::TooLong => "is over 254 bytes, memcached's limit",
                    Malformed::Nul => "holds a NUL byte",
                    Malformed::TooManyUsers => "is one user too many: memcached reads 8",
                })
            }
        }
    }
}

impl std::error::Error for LoadError {}

fn read(path: &str) -> Result<Users, LoadError> {
    let text = std::fs::read(path).map_err(|error| LoadError::Open {
        path: path.to_string(),
        error,
    })?;
    Users::parse(&text).map_err(|(line, why)| LoadError::Malformed {
        path: path.to_string(),
        line,
        why,
    })
}

/// The users of one reading of the file.
#[derive(Debug)]
pub struct Users {
    entries: Vec<(Field, Field)>,
}

impl Users {
    /// Reads the file's text; an error names the first bad line (from 1).
    pub fn parse(text: &[u8]) -> Result<Users, (usize, Malformed)> {
        let mut entries = Vec::new();
        if text.is_empty() {
            return Ok(Users { entries });
        }
        let lines = text.strip_suffix(b"\n").unwrap_or(text);
        for (i, line) in lines.split(|&b| b == b'\n').enumerate() {
            let number = i + 1;
            let why = if line.len() > MAX_LINE {
                Some(Malformed::TooLong)
            } else if line.contains(&0) {
                Some(Malformed::Nul)
            } else if entries.len() == MAX_USERS {
                Some(Malformed::TooManyUsers)
            } else {
                None
            };
            if let Some(why) = why {
                return Err((number, why));
            }
            let colon = memchr::memchr(b':', line).ok_or((number, Malformed::NoColon))?;
            let password = &line[colon + 1..];
            let password = match memchr::memchr(b'\r', password) {
                Some(end) => &password[..end],
                None => password,
            };
            entries.push((Field::new(&line[..colon]), Field::new(password)));
        }
        Ok(Users { entries })
    }

    fn check(&self, user: &Field, password: &Field) -> bool {
        let mut accepted = Choice::from(0);
        for (u, p) in &self.entries {
            accepted |= u.same(user) & p.same(password);
        }
        accepted.into()
    }
}

/// A user or a password, padded to [`FIELD`] bytes so that comparing two
/// takes the same time whatever their lengths and bytes.
#[derive(Debug)]
struct Field {
    bytes: [u8; FIELD],
    len: u64,
}

impl Field {
    /// `bytes`, of which a client's may be longer than any in the file:
    /// the length tells them apart.
    fn new(bytes: &[u8]) -> Field {
        let mut field = Field {
            bytes: [0; FIELD],
            len: bytes.len() as u64,
        };
        let n = bytes.len().min(FIELD);
        field.bytes[..n].copy_from_slice(&bytes[..n]);
        field
    }

    fn same(&self, other: &Field) -> Choice {
        self.bytes[..].ct_eq(&other.bytes[..]) & self.len.ct_eq(&other.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(text: &str) -> Users {
        Users::parse(text.as_bytes()).unwrap()
    }

    fn accepts(users: &Users, user: &str, password: &str) -> bool {
        users.check(
            &Field::new(user.as_bytes()),
            &Field::new(password.as_bytes()),
        )
    }

    #[test]
    fn lines_read_as_memcached_reads_them() {
        let u = users("alice:secret\nbob:pa:ss\r\ncarol:\n:nobody\n");
        assert!(accepts(&u, "alice", "secret"));
        assert!(accepts(&u, "bob", "pa:ss"));
        assert!(accepts(&u, "carol", ""));
        assert!(accepts(&u, "", "nobody"));
        assert!(!accepts(&u, "alice", "secret\r"));
        assert!(!accepts(&u, "alice", "secre"));
        assert!(!accepts(&u, "alice", "secrets"));
        assert!(!accepts(&u, "bob", "secret"));
        assert!(!accepts(&u, "alicex", "secret"));
        assert!(!accepts(&u, "secret", "alice"));
        // A client's words may be longer than any line.
        assert!(!accepts(&u, &"a".repeat(4000), "secret"));
    }

    #[test]
    fn a_missing_final_newline_keeps_the_password_whole() {
        assert!(accepts(&users("alice:secret"), "alice", "secret"));
        assert!(accepts(&users("bob:x\nalice:secret"), "alice", "secret"));
    }

    #[test]
    fn an_empty_file_has_no_users() {
        assert!(users("").entries.is_empty());
        assert!(!accepts(&users(""), "", ""));
    }

    #[test]
    fn bad_lines_are_named() {
        let err = |text: &str| Users::parse(text.as_bytes()).unwrap_err();
        assert_eq!(err("alice\n"), (1, Malformed::NoColon));
        assert_eq!(err("\n"), (1, Malformed::NoColon));
        assert_eq!(err("alice:x\n\nbob:y\n"), (2, Malformed::NoColon));
        assert_eq!(err("alice:x\n\n"), (2, Malformed::NoColon));
        assert_eq!(err("alice:x\r\n\r\n"), (2, Malformed::NoColon));
        assert_eq!(err("a:b\nal\0ice:x\n"), (2, Malformed::Nul));
        let longest = format!("u:{}\nv:w\n", "x".repeat(MAX_LINE - 2));
        assert_eq!(users(&longest).entries.len(), 2);
        let long = format!("v:w\nu:{}\n", "x".repeat(MAX_LINE - 1));
        assert_eq!(err(&long), (2, Malformed::TooLong));
        let eight: String = (1..=8).map(|i| format!("u{i}:p{i}\n")).collect();
        assert_eq!(users(&eight).entries.len(), 8);
        assert_eq!(
            err(&format!("{eight}u9:p9\n")),
            (9, Malformed::TooManyUsers)
        );
    }

    #[test]
    fn errors_read_as_memcacheds() {
        let error = LoadError::Malformed {
            path: "users".into(),
            line: 2,
            why: Malformed::NoColon,
        };
        assert_eq!(
            error.to_string(),
            "Authfile [users] has a malformed entry. Should be 'user:password': line 2 has no ':'"
        );
        let Err(error) = AuthFile::load("/nonexistent/kvserve-users") else {
            panic!("a missing file loaded");
        };
        assert_eq!(
            error.to_string(),
            "Could not open authfile [/nonexistent/kvserve-users] for reading, \
             error No such file or directory (os error 2)"
        );
    }
}
