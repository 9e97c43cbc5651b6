//! The client side of TLS (rustls with the ring provider): which server
//! certificates kvbench trusts, whether connections resume earlier
//! sessions, and the name the certificate must carry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which server certificates a TLS client accepts.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Those signed by a CA of this PEM file (`--tls-ca`).
    CaFile(PathBuf),
    /// This one certificate (DER): the throwaway one kvbench made for the
    /// servers it started.
    Certificate(CertificateDer<'static>),
    /// Any (`--tls-insecure`): the certificate is neither checked against
    /// a CA nor against the name; the server's handshake signature still is,
    /// so the client does the same work as one that verifies.
    Any,
}

/// How a client speaks TLS to one server.
#[derive(Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must carry: the host of
    /// `--server` (an IP address or a DNS name).
    pub name: ServerName<'static>,
}

impl TlsClient {
    /// A client of `host` trusting `trust`. With `resume`, connections
    /// share one session cache (rustls's in memory) and resume the
    /// sessions earlier connections got; without, every connection makes
    /// a full handshake, as a fresh client process would.
    pub fn new(trust: &Trust, host: &str, resume: bool) -> Result<TlsClient> {
        let provider = Arc::new(ring_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let mut config = match trust {
            Trust::CaFile(path) => builder
                .with_root_certificates(roots_from(path)?)
                .with_no_client_auth(),
            Trust::Certificate(cert) => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(cert.clone())
                    .context("kvbench's own certificate as a root")?;
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Any => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        config.resumption = if resume {
            Resumption::in_memory_sessions(256)
        } else {
            Resumption::disabled()
        };
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host:?} is not a host name for TLS"))?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }
}

/// rustls's ring provider, which the issue asks for (TLS without a C
/// toolchain), offering X25519 first, as OpenSSL's and Go's clients do.
/// ring's own order puts P-384 first, whose arithmetic ring has no
/// assembly for here: measured against memcached -Z on this VM, a full
/// handshake then cost the client 2.6 ms between the server's flight and
/// its Finished (strace), 40% of its samples in `bn_mul_mont_nohw`,
/// and churn over TLS measured kvbench, not the server. (rustls 0.23.48
/// deprecates the provider for lacking a post-quantum key exchange; the
/// servers measured here offer none either: memcached 1.6.18 on OpenSSL 3.0.)
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    use crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..crypto::ring::default_provider()
    }
}

/// Every certificate of a PEM file, as roots.
fn roots_from(path: &Path) -> Result<RootCertStore> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("--tls-ca {shown}: cannot read it"))?
    {
        let cert = cert.with_context(|| format!("--tls-ca {shown}: not PEM"))?;
        roots
            .add(cert)
            .with_context(|| format!("--tls-ca {shown}: a certificate rustls cannot use"))?;
    }
    if roots.is_empty() {
        bail!("--tls-ca {shown}: no certificate in it");
    }
    Ok(roots)
}

/// `--tls-insecure`'s verifier: any certificate, any name; the signatures
/// of the handshake checked with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
