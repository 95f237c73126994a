//! Client TLS (rustls, with the `ring` provider): the server configuration
//! built from PEM files, and swapped whole on reload.
//!
//! A reload builds a complete new configuration before anything changes,
//! so a missing or bad file leaves the one in use: connections already
//! open keep their sessions either way, and only handshakes after a
//! successful reload see the new certificate. With a CA file, every
//! client must present a certificate that chains to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// The PEM files a TLS client port is served with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; `None`:
    /// clients are not asked for one.
    pub ca: Option<PathBuf>,
}

/// Why a TLS configuration could not be built. Nothing changed: a reload
/// that fails keeps the configuration in use.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the kind wanted.
    #[error("{what} {path}: {message}")]
    File {
        /// Which file (`certificate file`, `key file`, `CA file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the combination (say, a key that does not match the
    /// certificate).
    #[error("TLS configuration from {cert}: {source}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// The TLS configuration in use, and how to rebuild it.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    handshake_timeout: Duration,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Builds the configuration from `files`.
    pub fn new(files: TlsFiles, handshake_timeout: Duration) -> Result<Tls, TlsError> {
        let config = build(&files)?;
        Ok(Tls { files, handshake_timeout, current: RwLock::new(config) })
    }

    /// What a new connection is accepted with: the configuration in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read()))
    }

    /// How long a client has to finish its handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Reads the files again; on success, new handshakes use what they hold.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        *self.current.write() = config;
        Ok(())
    }

    /// The files the configuration is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Checks that `files` make a working configuration (for config loading:
/// a bad file is a start-up error naming it).
pub fn check(files: &TlsFiles) -> Result<(), TlsError> {
    build(files).map(drop)
}

fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert, "certificate file")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_error("key file", &files.key, e))?;
    let config_error = |source| TlsError::Config { cert: files.cert.clone(), source };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match &files.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "CA file")? {
                roots.add(cert).map_err(|e| file_error("CA file", ca, e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_error("CA file", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).map_err(config_error)?;
    Ok(Arc::new(config))
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no certificate in it".into()));
    }
    Ok(certs)
}

fn pem_error(what: &'static str, path: &Path, error: rustls_pki_types::pem::Error) -> TlsError {
    let message = match error {
        rustls_pki_types::pem::Error::Io(error) => error.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the kind wanted in it".into(),
        other => format!("not valid PEM: {other}"),
    };
    file_error(what, path, message)
}

fn file_error(what: &'static str, path: &Path, message: String) -> TlsError {
    TlsError::File { what, path: path.to_owned(), message }
}

/// The default handshake deadline: a client that connects and sends
/// nothing holds a descriptor no longer than this.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
