//! Parsing the meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`): their
//! lines are checked in the order memcached 1.6.18 checks them, so that a
//! bad line gets the error memcached sends.

use super::base64;
use super::frame::{valid_key, Command, DataCommand, DataLine, Line};
use super::number::{parse_strtol_i32, parse_strtoull};
use super::request::{ErrorReply, MetaCommand, MetaFlags, MetaRequest, Request, Span};
use super::KEY_MAX_LENGTH;

/// memcached's `MFLAG_MAX_OPT_LENGTH`: a meta line of this many tokens or
/// more (its count includes a terminal token) is refused.
const MAX_TOKENS: usize = 20;

/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`: the longest `O` token.
const MAX_OPAQUE: usize = 32;

/// A refused meta command. memcached sends meta errors even in quiet mode.
fn refuse(reply: ErrorReply) -> Command {
    Command::Complete(Request::Error {
        reply,
        noreply: false,
    })
}

impl Line<'_> {
    /// The meta command on this line, if its command word is one.
    pub(super) fn meta(&self) -> Option<Command> {
        let word = self.token(0);
        if word.len() != 2 || word[0] != b'm' {
            return None;
        }
        Some(match word[1] {
            b'g' => self.meta_command(MetaCommand::Get),
            b's' => self.meta_set(),
            b'd' => self.meta_command(MetaCommand::Delete),
            b'a' => self.meta_command(MetaCommand::Arithmetic),
            b'n' => Command::Complete(Request::MetaNoop),
            b'e' => self.meta_debug(),
            _ => refuse(ErrorReply::UnknownCommand),
        })
    }

    /// `mg`, `md` and `ma`: a key and flags.
    fn meta_command(&self, command: MetaCommand) -> Command {
        if self.count < 2 {
            return refuse(ErrorReply::UnknownCommand);
        }
        if let Some(refused) = self.bad_key() {
            return refused;
        }
        if self.count >= MAX_TOKENS {
            return refuse(match command {
                MetaCommand::Get => ErrorReply::MetaGetTooManyFlags,
                _ => ErrorReply::MetaTooManyFlags,
            });
        }
        let flags = match self.meta_flags(2) {
            Ok((flags, _)) => flags,
            Err(reply) if command == MetaCommand::Get => return refuse(reply),
            Err(_) => return refuse(ErrorReply::InvalidOrDuplicateFlag),
        };
        match command {
            MetaCommand::Arithmetic if !matches!(flags.mode, 0 | b'I' | b'+' | b'D' | b'-') => {
                return refuse(ErrorReply::InvalidArithmeticMode)
            }
            // memcached checks `mg`'s and `ma`'s opaque only as it writes
            // the reply, after the command took effect: the executor does.
            MetaCommand::Delete if self.opaque_too_long(2) => {
                return refuse(ErrorReply::OpaqueTooLong)
            }
            _ => {}
        }
        Command::Complete(Request::Meta(MetaRequest {
            command,
            key: self.tokens[1],
            tokens: self.rest_from(2),
            data: Span::new(0, 0),
            flags,
        }))
    }

    /// `ms <key> <datalen> <flags>*`: errors found after the data length
    /// swallow the data block, as memcached does.
    fn meta_set(&self) -> Command {
        if self.count < 2 {
            return refuse(ErrorReply::UnknownCommand);
        }
        if let Some(refused) = self.bad_key() {
            return refused;
        }
        if self.count == 2 {
            return refuse(ErrorReply::BadCommandLineFormat);
        }
        if self.count >= MAX_TOKENS {
            return refuse(ErrorReply::MetaTooManyFlags);
        }
        let data_len = match parse_strtol_i32(self.token(2)) {
            Some(len) if (0..=i64::from(i32::MAX) - 2).contains(&len) => len as usize,
            _ => return refuse(ErrorReply::BadCommandLineFormat),
        };
        let swallow = |reply| Command::Swallow {
            request: Request::Error {
                reply,
                noreply: false,
            },
            data_len,
        };
        let (flags, key_len) = match self.meta_flags(3) {
            Ok(read) => read,
            Err(reply) => return swallow(reply),
        };
        if !matches!(flags.mode, 0 | b'E' | b'A' | b'P' | b'R' | b'S') {
            return swallow(ErrorReply::InvalidSetMode);
        }
        if self.opaque_too_long(3) {
            return swallow(ErrorReply::OpaqueTooLong);
        }
        Command::Data(DataLine {
            key_len,
            data_len,
            command: DataCommand::MetaSet {
                key: self.tokens[1],
                tokens: self.rest_from(3),
                flags,
            },
        })
    }

    /// `me <key> [b]`.
    fn meta_debug(&self) -> Command {
        if self.count < 2 {
            return refuse(ErrorReply::BadCommandLineFormat);
        }
        if let Some(refused) = self.bad_key() {
            return refused;
        }
        let binary = self.count >= 3 && self.token(2) == b"b";
        if binary && decode_key(self.token(1), &mut [0; KEY_MAX_LENGTH]).is_none() {
            return refuse(ErrorReply::BadCommandLineFormat);
        }
        Command::Complete(Request::MetaDebug {
            key: self.tokens[1],
            binary,
        })
    }

    /// memcached refuses a key token over 250 bytes (base64 or not);
    /// kvserve also refuses control characters, as for classic commands.
    fn bad_key(&self) -> Option<Command> {
        let key = self.token(1);
        (key.len() > KEY_MAX_LENGTH || !valid_key(key))
            .then(|| refuse(ErrorReply::BadCommandLineFormat))
    }

    /// Whether an `O` token from token `first` on is too long to echo.
    fn opaque_too_long(&self, first: usize) -> bool {
        (first..self.count)
            .map(|i| self.token(i))
            .any(|t| t[0] == b'O' && t.len() > MAX_OPAQUE)
    }

    /// Reads the flags from token `first` on, as memcached's
    /// `_meta_flag_preparse`: a duplicate or unknown flag stops at once;
    /// other errors are remembered, the last one wins, and reading goes
    /// on. Also returns the key's length, decoded if `b` is present.
    fn meta_flags(&self, first: usize) -> Result<(MetaFlags, usize), ErrorReply> {
        let mut flags = MetaFlags::default();
        let mut key_len = self.token(1).len();
        let mut error = None;
        let mut bad = |reply: Option<ErrorReply>| {
            // A bad `F` keeps the error before it, or the default one.
            error = Some(reply.or(error).unwrap_or(ErrorReply::BadCommandLineFormat));
        };
        for token in (first..self.count).map(|i| self.token(i)) {
            let (flag, value) = (token[0], &token[1..]);
            if flag >= 127 || flags.has(flag) {
                return Err(ErrorReply::DuplicateFlag);
            }
            let exptime = || parse_strtol_i32(value).ok_or(ErrorReply::BadToken);
            match flag {
                b'b' => match decode_key(self.token(1), &mut [0; KEY_MAX_LENGTH]) {
                    Some(key) => key_len = key.len(),
                    None => bad(Some(ErrorReply::KeyDecode)),
                },
                b'N' => exptime().map_or_else(|e| bad(Some(e)), |t| flags.vivify_ttl = t),
                b'T' => exptime().map_or_else(|e| bad(Some(e)), |t| flags.ttl = t),
                b'R' => exptime().map_or_else(|e| bad(Some(e)), |t| flags.recache_ttl = t),
                // memcached truncates flags over 32 bits; kvserve refuses
                // them, as for the classic commands.
                b'F' => parse_strtoull(value)
                    .and_then(|f| u32::try_from(f).ok())
                    .map_or_else(|| bad(None), |f| flags.client_flags = f),
                b'C' => parse_strtoull(value)
                    .map_or_else(|| bad(Some(ErrorReply::BadToken)), |c| flags.cas = c),
                b'M' if token.len() != 2 => bad(Some(ErrorReply::ModeTokenLength)),
                b'M' => flags.mode = token[1],
                b'J' => parse_strtoull(value).map_or_else(
                    || bad(Some(ErrorReply::InvalidInitial)),
                    |j| flags.initial = j,
                ),
                b'D' => parse_strtoull(value).map_or_else(
                    || bad(Some(ErrorReply::InvalidDeltaValue)),
                    |d| flags.delta = d,
                ),
                b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'v' | b'h' | b'l'
                | b'u' | b'q' | b'I' => {}
                _ => return Err(ErrorReply::InvalidFlag),
            }
            flags.insert(flag);
        }
        match error {
            Some(reply) => Err(reply),
            None => Ok((flags, key_len)),
        }
    }
}

/// Decodes a `b` key token into `out`; `None` if memcached could not.
pub fn decode_key<'a>(token: &[u8], out: &'a mut [u8; KEY_MAX_LENGTH]) -> Option<&'a [u8]> {
    base64::decode(token, out).map(|len| &out[..len])
}
