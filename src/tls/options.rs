//! memcached's `-o ssl_*` suboptions, read as memcached reads them: a
//! comma-separated list of `name=value` (or a bare `name`), `-o` given any
//! number of times.

use std::fmt;
use std::path::PathBuf;

/// Whether and how clients prove who they are (`ssl_verify_mode`), with
/// memcached's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// 0: no client certificate is asked for.
    #[default]
    None,
    /// 1: one is asked for; a client without one is served, one with a
    /// certificate that does not verify is refused.
    Request,
    /// 2: a client without a certificate that verifies is refused.
    Require,
    /// 3: as 2, checked on the first handshake only (OpenSSL's
    /// `SSL_VERIFY_CLIENT_ONCE`). rustls never renegotiates, so every
    /// connection has just the one handshake and this is the same as 2.
    Once,
}

impl VerifyMode {
    fn from_number(text: &str) -> Option<VerifyMode> {
        match text {
            "0" => Some(VerifyMode::None),
            "1" => Some(VerifyMode::Request),
            "2" => Some(VerifyMode::Require),
            "3" => Some(VerifyMode::Once),
            _ => None,
        }
    }

    /// memcached's number, as `stats settings` shows it.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// The oldest protocol version accepted (`ssl_min_version`), with
/// memcached's numbers: 0 TLS 1.0 ... 3 TLS 1.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MinVersion {
    Tls10 = 0,
    Tls11 = 1,
    Tls12 = 2,
    Tls13 = 3,
}

impl MinVersion {
    /// As `stats settings` names it (`tlsv1.2`).
    pub fn name(self) -> &'static str {
        match self {
            MinVersion::Tls10 => "tlsv1.0",
            MinVersion::Tls11 => "tlsv1.1",
            MinVersion::Tls12 => "tlsv1.2",
            MinVersion::Tls13 => "tlsv1.3",
        }
    }
}

/// Everything `-o` said about TLS; `-Z` decides whether it is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub chain_cert: Option<PathBuf>,
    /// The private key; `None`: it is in the chain file.
    pub key: Option<PathBuf>,
    /// The CAs a client certificate must chain to.
    pub ca_cert: Option<PathBuf>,
    pub verify_mode: VerifyMode,
    pub min_version: MinVersion,
    /// Keep sessions so that clients can resume them, skipping the
    /// public-key operations of a full handshake.
    pub session_cache: bool,
    /// Encrypted bytes a connection's TLS session may hold unsent before
    /// its replies wait in the connection's own output (KiB; memcached's
    /// per-connection SSL write buffer).
    pub wbuf_size_kib: usize,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            chain_cert: None,
            key: None,
            ca_cert: None,
            verify_mode: VerifyMode::None,
            min_version: MinVersion::Tls12,
            session_cache: false,
            wbuf_size_kib: 16,
        }
    }
}

/// A suboption refused, with memcached's words where it has them.
#[derive(Debug, PartialEq, Eq)]
pub struct BadOption(pub String);

impl fmt::Display for BadOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TlsOptions {
    /// Applies the suboptions of every `-o`, in order (a later one wins).
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<TlsOptions, BadOption> {
        let mut options = TlsOptions::default();
        for item in lists.into_iter().flat_map(|list| list.split(',')) {
            if !item.is_empty() {
                options.apply(item)?;
            }
        }
        Ok(options)
    }

    fn apply(&mut self, item: &str) -> Result<(), BadOption> {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (item, None),
        };
        let illegal = || BadOption(format!("Illegal suboption \"{item}\""));
        let path = || {
            value
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .ok_or_else(illegal)
        };
        match name {
            "ssl_chain_cert" => self.chain_cert = Some(path()?),
            "ssl_key" => self.key = Some(path()?),
            "ssl_ca_cert" => self.ca_cert = Some(path()?),
            "ssl_verify_mode" => {
                self.verify_mode = value.and_then(VerifyMode::from_number).ok_or_else(|| {
                    BadOption("could not parse argument to ssl_verify_mode".into())
                })?
            }
            "ssl_min_version" => {
                self.min_version = match value {
                    Some("0") => MinVersion::Tls10,
                    Some("1") => MinVersion::Tls11,
                    Some("2") => MinVersion::Tls12,
                    Some("3") => MinVersion::Tls13,
                    _ => {
                        return Err(BadOption(
                            "could not parse argument to ssl_min_version".into(),
                        ))
                    }
                }
            }
            "ssl_session_cache" => self.session_cache = true,
            "ssl_wbuf_size" => {
                self.wbuf_size_kib = value
                    .and_then(|v| v.parse().ok())
                    .filter(|&kib: &usize| (1..=1024).contains(&kib))
                    .ok_or_else(|| BadOption("could not parse argument to ssl_wbuf_size".into()))?
            }
            "ssl_keyformat" => {
                // memcached's 1 is PEM, the only format kvserve reads.
                if !matches!(value, Some("1") | Some("PEM") | Some("pem")) {
                    return Err(BadOption(
                        "ssl_keyformat: kvserve reads PEM keys only (1)".into(),
                    ));
                }
            }
            "ssl_ciphers" => {
                return Err(BadOption(
                    "ssl_ciphers is not supported: kvserve's TLS (rustls) offers only its own \
                     modern cipher suites"
                        .into(),
                ))
            }
            "ssl_kernel_tls" => {
                return Err(BadOption(
                    "ssl_kernel_tls is not supported by kvserve".into(),
                ))
            }
            _ => return Err(illegal()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcacheds_spelling() {
        let options = TlsOptions::parse([
            "ssl_chain_cert=/c.pem,ssl_key=/k.pem",
            "ssl_verify_mode=2,ssl_ca_cert=/ca.pem,ssl_session_cache,ssl_min_version=3",
        ])
        .unwrap();
        assert_eq!(options.chain_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(options.key, Some(PathBuf::from("/k.pem")));
        assert_eq!(options.ca_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(options.verify_mode, VerifyMode::Require);
        assert_eq!(options.min_version, MinVersion::Tls13);
        assert!(options.session_cache);
        assert_eq!(TlsOptions::parse([]).unwrap(), TlsOptions::default());
    }

    #[test]
    fn refusals() {
        let refused = |list: &str| TlsOptions::parse([list]).unwrap_err().0;
        assert_eq!(refused("foo=1"), "Illegal suboption \"foo=1\"");
        assert_eq!(
            refused("ssl_chain_cert"),
            "Illegal suboption \"ssl_chain_cert\""
        );
        assert!(refused("ssl_verify_mode=4").contains("ssl_verify_mode"));
        assert!(refused("ssl_min_version=tls").contains("ssl_min_version"));
        assert!(refused("ssl_ciphers=HIGH").contains("not supported"));
    }
}
