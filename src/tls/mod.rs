//! TLS as memcached 1.6 has it: `-Z` turns it on, `-o ssl_*` says with
//! what ([`options`]). This module owns the server's side of it that every
//! connection shares: the certificate it presents, reloaded by
//! `refresh_certs` without disturbing open connections (each keeps the
//! configuration it started with), the session cache that lets clients
//! resume, and the counters `stats` reports. Reading and writing through
//! a session is the connection machinery's
//! ([`crate::server::tls_io`]); which thread does it is each pattern's.

pub mod options;

use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rustls::crypto::CryptoProvider;
use rustls::server::{
    NoServerSessionStorage, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use options::{MinVersion, TlsOptions, VerifyMode};

/// Sessions kept for resumption (`ssl_session_cache`). Each is a few
/// hundred bytes, so the cache stays within a couple of MiB; a client
/// whose session was pushed out does one full handshake more.
const SESSION_CACHE_SIZE: usize = 8192;

/// The server's TLS: what `-Z` and `-o` built, shared by every thread.
pub struct Tls {
    pub options: TlsOptions,
    /// The configuration new connections start with: replaced whole by
    /// `refresh_certs`, while each open connection holds on to its own.
    config: RwLock<Arc<ServerConfig>>,
    /// Shared by every configuration, so that sessions survive a refresh.
    sessions: Arc<dyn StoresServerSessions>,
    refreshed: Mutex<Instant>,
    pub counters: Arc<TlsCounters>,
}

/// memcached's TLS counters, for `stats`. Handshakes and errors are
/// rare next to requests, so shared atomics cost nothing that shows.
#[derive(Default, Debug)]
pub struct TlsCounters {
    /// Connections that failed before their handshake completed (a
    /// plaintext client, an unknown client certificate, a bad hello).
    pub handshake_errors: AtomicU64,
    /// Connections that failed after it (a corrupt or truncated record).
    pub proto_errors: AtomicU64,
    /// Sessions stored for resumption.
    pub new_sessions: AtomicU64,
}

impl Tls {
    /// Loads the certificate, key and client CAs the options name. The
    /// error reads as memcached's (`Error loading the key: PATH : why`).
    pub fn new(options: TlsOptions) -> Result<Tls, String> {
        if options.chain_cert.is_none() {
            return Err(
                "TLS (-Z) needs a certificate: -o ssl_chain_cert=FILE,ssl_key=FILE".to_string(),
            );
        }
        if options.verify_mode != VerifyMode::None && options.ca_cert.is_none() {
            return Err(format!(
                "ssl_verify_mode={} needs the CAs to verify clients with: -o ssl_ca_cert=FILE",
                options.verify_mode.number()
            ));
        }
        let counters = Arc::new(TlsCounters::default());
        let sessions: Arc<dyn StoresServerSessions> = if options.session_cache {
            Arc::new(CountedSessions {
                cache: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
                counters: Arc::clone(&counters),
            })
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        let config = build_config(&options, &sessions)?;
        Ok(Tls {
            options,
            config: RwLock::new(Arc::new(config)),
            sessions,
            refreshed: Mutex::new(Instant::now()),
            counters,
        })
    }

    /// A session for a new connection, with the current certificate.
    pub fn session(&self) -> Result<ServerConnection, rustls::Error> {
        let config = Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()));
        let mut session = ServerConnection::new(config)?;
        session.set_buffer_limit(Some(self.options.wbuf_size_kib * 1024));
        Ok(session)
    }

    /// `refresh_certs`: reads the files again. On an error the old
    /// certificate stays, and the error says which file and why.
    pub fn refresh(&self) -> Result<(), String> {
        let config = build_config(&self.options, &self.sessions)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *self.refreshed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// Seconds since the certificate was loaded (`time_since_server_cert_refresh`).
    pub fn since_refresh(&self) -> u64 {
        let refreshed = *self.refreshed.lock().unwrap_or_else(|e| e.into_inner());
        refreshed.elapsed().as_secs()
    }
}

/// The crypto every TLS session here uses: *ring*, which needs no C
/// toolchain beyond the one jemalloc needs already. rustls 0.23.48
/// deprecates it for lacking post-quantum key exchange (aws-lc-rs has it,
/// at the price of cmake and a long C build); memcached's OpenSSL 3.0 has
/// none either, so the comparison stays like for like.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_config(
    options: &TlsOptions,
    sessions: &Arc<dyn StoresServerSessions>,
) -> Result<ServerConfig, String> {
    let provider = provider();
    let chain_path = options
        .chain_cert
        .as_deref()
        .unwrap_or(std::path::Path::new(""));
    let chain = read_certs(chain_path).map_err(|why| {
        format!(
            "Error loading the certificate chain: {} : {why}",
            chain_path.display()
        )
    })?;
    let key_path = options.key.as_deref().unwrap_or(chain_path);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|why| format!("Error loading the key: {} : {why}", key_path.display()))?;
    // rustls speaks TLS 1.2 and 1.3 only: a minimum of 1.0 or 1.1 asks
    // for nothing it would not accept anyway.
    let versions: &[&rustls::SupportedProtocolVersion] = if options.min_version == MinVersion::Tls13
    {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match options.verify_mode {
        VerifyMode::None => builder.with_no_client_auth(),
        mode => builder.with_client_cert_verifier(client_verifier(options, mode, provider)?),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|why| format!("Error loading the key: {} : {why}", key_path.display()))?;
    config.session_storage = Arc::clone(sessions);
    // One ticket per connection: enough for the client to resume its
    // next one (TLS 1.3 tickets are used once), half the default's work.
    config.send_tls13_tickets = usize::from(options.session_cache);
    Ok(config)
}

fn client_verifier(
    options: &TlsOptions,
    mode: VerifyMode,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let ca_path = options
        .ca_cert
        .as_deref()
        .unwrap_or(std::path::Path::new(""));
    let loading = |why: String| {
        format!(
            "Error loading the CA certificates: {} : {why}",
            ca_path.display()
        )
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca_path).map_err(loading)? {
        roots.add(cert).map_err(|e| loading(e.to_string()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if mode == VerifyMode::Request {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|e| loading(e.to_string()))
}

/// Every certificate in a PEM file; none is an error.
fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_reader_iter(BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in the file".to_string());
    }
    Ok(certs)
}

/// The session cache, counting what it stores (`ssl_new_sessions`).
#[derive(Debug)]
struct CountedSessions {
    cache: Arc<ServerSessionMemoryCache>,
    counters: Arc<TlsCounters>,
}

impl StoresServerSessions for CountedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.counters.new_sessions.fetch_add(1, Ordering::Relaxed);
        self.cache.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
