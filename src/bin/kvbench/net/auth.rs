//! memcached's ASCII authentication (`memcached -Y FILE`): a user and
//! password sent as the data of a `set` before anything else, and the auth
//! file a server kvbench starts reads them from.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A user and password, from `--auth USER:PASS`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// The request that authenticates a connection: `set <anykey> 0 0
    /// <len>\r\n<user> <password>\r\n` (the key is ignored).
    pub fn request(&self) -> Vec<u8> {
        let data = format!("{} {}", self.user, self.password);
        format!("set kvbench-auth 0 0 {}\r\n{data}\r\n", data.len()).into_bytes()
    }

    /// The line of an auth file (`-Y`) that accepts them: `user:password`.
    pub fn file_line(&self) -> String {
        format!("{}:{}\n", self.user, self.password)
    }

    /// Authenticates `stream`, a connection nothing else was sent on:
    /// sends [`Credentials::request`] and reads the one line of reply,
    /// `STORED` when accepted (bounded by the stream's read timeout). The
    /// server sends nothing else before the next request, so whatever was
    /// read is that line.
    pub fn authenticate(&self, stream: &mut (impl Read + Write)) -> io::Result<()> {
        stream.write_all(&self.request())?;
        stream.flush()?;
        let mut line = [0u8; 256];
        let mut len = 0;
        while !line[..len].ends_with(b"\r\n") && len < line.len() {
            match stream.read(&mut line[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let line = &line[..len];
        if line == b"STORED\r\n" {
            return Ok(());
        }
        let said = String::from_utf8_lossy(line).trim_end().to_string();
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            if said.is_empty() {
                format!(
                    "authentication as {:?}: the server closed the connection",
                    self.user
                )
            } else {
                format!("authentication as {:?} refused: {said}", self.user)
            },
        ))
    }
}

/// `USER:PASS`: neither empty, both printable without spaces (memcached
/// splits the request's data at spaces: a password with one is refused,
/// as measured against 1.6.18), the user without colons (the auth file's
/// lines split at the first one).
impl FromStr for Credentials {
    type Err = String;

    fn from_str(text: &str) -> Result<Credentials, String> {
        let bad = |why: &str| format!("expected USER:PASS, {why}");
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| bad("with a colon between them"))?;
        if user.is_empty() || password.is_empty() {
            return Err(bad("neither empty"));
        }
        if !user.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("the user printable without spaces"));
        }
        if !password.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("the password printable without spaces"));
        }
        Ok(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }
}

/// The user only: the password stays out of logs and error messages.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}:***)", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_encode() {
        let c: Credentials = "alice:pa:ss!".parse().unwrap();
        assert_eq!(c.request(), b"set kvbench-auth 0 0 12\r\nalice pa:ss!\r\n");
        assert_eq!(c.file_line(), "alice:pa:ss!\n");
        assert!(!format!("{c:?}").contains("pa:ss"));
        for bad in [
            "alice",
            ":x",
            "alice:",
            "al ice:x",
            "alice:x\ny",
            "alice:a b",
            "",
        ] {
            assert!(bad.parse::<Credentials>().is_err(), "{bad:?}");
        }
    }

    /// A peer that answers `reply` to whatever is written.
    struct Peer {
        reply: io::Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reply.read(buf)
        }
    }

    impl Write for Peer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sent.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn peer(reply: &[u8]) -> Peer {
        Peer {
            reply: io::Cursor::new(reply.to_vec()),
            sent: Vec::new(),
        }
    }

    #[test]
    fn authenticates_on_stored_and_says_what_else_came() {
        let c: Credentials = "u:p".parse().unwrap();
        let mut p = peer(b"STORED\r\n");
        c.authenticate(&mut p).unwrap();
        assert_eq!(p.sent, c.request());
        let err = c
            .authenticate(&mut peer(b"CLIENT_ERROR unauthenticated\r\n"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err
            .to_string()
            .contains("refused: CLIENT_ERROR unauthenticated"));
        let err = c.authenticate(&mut peer(b"")).unwrap_err();
        assert!(err.to_string().contains("closed the connection"), "{err}");
    }
}
