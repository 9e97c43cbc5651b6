//! What the servers kvbench starts need for TLS and authentication: a
//! throwaway certificate and key (made with rcgen for this run; nothing
//! is committed or reused) and an auth file, in a private temporary
//! directory removed when the run ends, and the flags that point memcached
//! (and kvserve, which spells them as memcached does) at them.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{ensure, Context, Result};
use rustls::pki_types::CertificateDer;

use crate::net::auth::Credentials;

/// The temporary directory and what is in it.
pub struct Secrets {
    dir: PathBuf,
    /// The certificate's DER, which the clients trust; `None` without TLS.
    certificate: Option<CertificateDer<'static>>,
    auth: bool,
}

impl Secrets {
    /// A certificate for `localhost` and 127.0.0.1 with its key when `tls`,
    /// an auth file accepting `auth` when given.
    pub fn create(tls: bool, auth: Option<&Credentials>) -> Result<Secrets> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kvbench-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        // memcached's -o splits its value at commas.
        ensure!(
            !dir.to_string_lossy().contains(','),
            "the temporary directory {} has a comma in its path, which memcached's -o cannot take",
            dir.display()
        );
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let mut secrets = Secrets {
            dir,
            certificate: None,
            auth: auth.is_some(),
        };
        if tls {
            let made = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .context("making a certificate")?;
            secrets.write("cert.pem", &made.cert.pem())?;
            secrets.write("key.pem", &made.key_pair.serialize_pem())?;
            secrets.certificate = Some(made.cert.der().clone());
        }
        if let Some(auth) = auth {
            secrets.write("auth", &auth.file_line())?;
        }
        Ok(secrets)
    }

    /// Writes `name`, readable by this user only.
    fn write(&self, name: &str, text: &str) -> Result<()> {
        let path = self.path(name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The certificate the servers present, for the clients to trust.
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.certificate.as_ref()
    }

    /// The server flags: `-Z -o ssl_chain_cert=..,ssl_key=..,ssl_session_cache`
    /// when `tls` and there is a certificate (the session cache lets
    /// clients resume: churn+tls+resume), and `-Y FILE` when there are
    /// credentials.
    pub fn server_args(&self, tls: bool) -> Vec<String> {
        let mut args = Vec::new();
        if tls && self.certificate.is_some() {
            args.push("-Z".to_string());
            args.push("-o".to_string());
            args.push(format!(
                "ssl_chain_cert={},ssl_key={},ssl_session_cache",
                shown(&self.path("cert.pem")),
                shown(&self.path("key.pem"))
            ));
        }
        if self.auth {
            args.push("-Y".to_string());
            args.push(shown(&self.path("auth")));
        }
        args
    }
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_removed_and_flags_point_at_them() {
        use std::os::unix::fs::PermissionsExt;
        let auth: Credentials = "kv:bench".parse().unwrap();
        let secrets = Secrets::create(true, Some(&auth)).unwrap();
        let dir = secrets.dir.clone();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        assert_eq!(fs::read_to_string(dir.join("auth")).unwrap(), "kv:bench\n");
        assert!(fs::read_to_string(dir.join("cert.pem"))
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(secrets.certificate().is_some());
        let args = secrets.server_args(true);
        assert_eq!(args[..2], ["-Z", "-o"]);
        assert!(args[2].starts_with("ssl_chain_cert=/") && args[2].ends_with(",ssl_session_cache"));
        assert_eq!(args[3..], ["-Y".to_string(), shown(&dir.join("auth"))]);
        assert_eq!(secrets.server_args(false).len(), 2, "-Y only");
        drop(secrets);
        assert!(!dir.exists());
        let plain = Secrets::create(false, None).unwrap();
        assert!(plain.server_args(true).is_empty() && plain.certificate().is_none());
    }
}
