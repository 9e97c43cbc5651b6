//! The handshake of memcached's ASCII authentication (`-Y`), read as
//! memcached 1.6.18 reads everything a connection sends before it has
//! authenticated (`try_read_command_asciiauth`): a `set`-shaped request
//! whose data block is `<user> <password>`, and anything else refused.
//!
//! ```text
//! set <any key> <any flags> <any exptime> <bytes>\r\n
//! <user> <password>\r\n
//! ```
//!
//! Only the command word and `<bytes>` are read; key, flags, exptime and a
//! `noreply` are ignored. Any other line is one refused request (`CLIENT_ERROR
//! unauthenticated`), so the data block of an `ms` sent before authenticating
//! is refused as a line of its own.

use super::frame::Line;
use super::number::parse_strtoull;
use super::request::{ErrorReply, Span};

/// Longest line without a newline before the connection is closed, as for
/// other requests (memcached: 2048). Unlike them, a long multi-get gets no
/// more room: memcached does not look for one before authentication.
const MAX_LINE: usize = 2048;

/// The largest data block (with its `\r\n`) memcached 1.6.18 can take: the
/// size of its read buffer. It closes the connection, with no reply, once
/// a larger one fills the buffer (measured: 16,382 bytes of credentials
/// answered, 16,383 closed); kvserve closes as soon as the line announces
/// one, rather than buffer what it will never read.
const MAX_BLOCK: usize = 16 * 1024;

/// What the bytes at the start of a connection's buffer are, before it
/// has authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// A `set`-shaped request `len` bytes long whose data block names a
    /// user and a password (spans into the buffer), to be checked.
    Credentials {
        user: Span,
        password: Span,
        len: usize,
    },
    /// A request `len` bytes long answered with `reply`, checking nothing.
    Refused { reply: ErrorReply, len: usize },
    /// Read more and look again.
    Incomplete,
    /// Close the connection without a reply: a line over [`MAX_LINE`] with
    /// no newline, or a data block over [`MAX_BLOCK`].
    Close,
}

/// Reads the handshake at the start of `buf`.
pub fn parse_handshake(buf: &[u8]) -> Handshake {
    let Some(newline) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_LINE {
            Handshake::Close
        } else {
            Handshake::Incomplete
        };
    };
    let line_len = newline + 1;
    // memcached splits the line as a C string, `\r` included: the number
    // of bytes then ends at the `\r`, as strtoul stops there.
    let line = Line::split(until_nul(&buf[..newline]));
    let size = (line.count >= 5 && line.token(0) == b"set")
        .then(|| parse_strtoull(line.token(4)))
        .flatten();
    let Some(size) = size else {
        return Handshake::Refused {
            reply: ErrorReply::Unauthenticated,
            len: line_len,
        };
    };
    // Kept to 32 bits, as memcached's safe_strtoul keeps it.
    let block = size as u32 as usize + 2;
    if block > MAX_BLOCK {
        return Handshake::Close;
    }
    let len = line_len + block;
    if buf.len() < len {
        return Handshake::Incomplete;
    }
    if &buf[len - 2..len] != b"\r\n" {
        return Handshake::Refused {
            reply: ErrorReply::BadLineTermination,
            len,
        };
    }
    let payload = until_nul(&buf[line_len..len - 2]);
    let words = Line::split(payload);
    if words.count < 2 {
        return Handshake::Refused {
            reply: ErrorReply::BadAuthenticationFormat,
            len,
        };
    }
    // Words after the password are ignored, as memcached ignores them.
    let word = |i: usize| Span::new(line_len + words.tokens[i].start(), words.token(i).len());
    Handshake::Credentials {
        user: word(0),
        password: word(1),
        len,
    }
}

/// The bytes before the first NUL: memcached reads the line and the
/// credentials as C strings.
fn until_nul(bytes: &[u8]) -> &[u8] {
    match memchr::memchr(0, bytes) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(reply: ErrorReply, len: usize) -> Handshake {
        Handshake::Refused { reply, len }
    }

    /// The user and password a handshake names, and its length.
    fn credentials(buf: &[u8]) -> Option<(&[u8], &[u8], usize)> {
        match parse_handshake(buf) {
            Handshake::Credentials {
                user,
                password,
                len,
            } => Some((user.of(buf), password.of(buf), len)),
            _ => None,
        }
    }

    #[test]
    fn set_shaped_credentials() {
        let buf = b"set k 0 0 12\r\nalice secret\r\nget k\r\n";
        assert_eq!(credentials(buf), Some((&b"alice"[..], &b"secret"[..], 28)));
        // Key, flags and exptime are not read; noreply is ignored; a bare
        // \n ends the line; spaces around the words and words after them
        // do not matter.
        for buf in [
            &b"set k x y 12 noreply\r\nalice secret\r\n"[..],
            b"set k 0 0 12\nalice secret\r\n",
            b"set k 0 0 15\r\n alice  secret \r\n",
            b"set k 0 0 18\r\nalice secret extra\r\n",
            b"set k 0 0 +12\r\nalice secret\r\n",
        ] {
            let (user, password, len) = credentials(buf).unwrap();
            assert_eq!(
                (user, password, len),
                (&b"alice"[..], &b"secret"[..], buf.len())
            );
        }
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        for line in [
            &b"get k\r\n"[..],
            b"SET k 0 0 12\r\n",
            b"set k 0 0\r\n",
            b"set k 0 0 -1\r\n",
            b"set k 0 0 5x\r\n",
            b"set k 0 0 \r\n",
            b"mn\n",
            b"\r\n",
            b"\x80\n",
        ] {
            assert_eq!(
                parse_handshake(line),
                refused(ErrorReply::Unauthenticated, line.len()),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn data_blocks_that_hold_no_credentials() {
        let buf = b"set k 0 0 5\r\nhello\r\n";
        assert_eq!(
            parse_handshake(buf),
            refused(ErrorReply::BadAuthenticationFormat, buf.len())
        );
        let buf = b"set k 0 0 0\r\n\r\n";
        assert_eq!(
            parse_handshake(buf),
            refused(ErrorReply::BadAuthenticationFormat, buf.len())
        );
        let buf = b"set k 0 0 12\r\nalice secretXX";
        assert_eq!(
            parse_handshake(buf),
            refused(ErrorReply::BadLineTermination, buf.len())
        );
        // 2^32 bytes is 0 once kept to 32 bits.
        let buf = b"set k 0 0 4294967296\r\n\r\n";
        assert_eq!(
            parse_handshake(buf),
            refused(ErrorReply::BadAuthenticationFormat, buf.len())
        );
        // A NUL ends the credentials.
        let buf = b"set k 0 0 13\r\nalice\0 secret\r\n";
        assert_eq!(
            parse_handshake(buf),
            refused(ErrorReply::BadAuthenticationFormat, buf.len())
        );
    }

    #[test]
    fn waits_for_the_whole_request() {
        let buf = b"set k 0 0 12\r\nalice secret\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse_handshake(&buf[..end]), Handshake::Incomplete, "{end}");
        }
        assert_eq!(parse_handshake(&[b'x'; MAX_LINE]), Handshake::Incomplete);
        assert_eq!(parse_handshake(&[b'x'; MAX_LINE + 1]), Handshake::Close);
    }

    #[test]
    fn blocks_over_memcacheds_read_buffer_close() {
        let largest = format!("set k 0 0 {}\r\n", MAX_BLOCK - 2);
        assert_eq!(parse_handshake(largest.as_bytes()), Handshake::Incomplete);
        let over = format!("set k 0 0 {}\r\n", MAX_BLOCK - 1);
        assert_eq!(parse_handshake(over.as_bytes()), Handshake::Close);
        assert_eq!(
            parse_handshake(b"set k 0 0 4294967295\r\n"),
            Handshake::Close
        );
    }
}
