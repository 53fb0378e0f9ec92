//! HTTPS and WSS: the TLS certificate the HTTP port serves, with rustls (aws-lc-rs).
//!
//! A [`TlsAcceptorHandle`] is shared by the accept loop and whoever reloads it (the server's
//! SIGHUP handler): each new connection is handshaken with the certificate in force when it
//! arrived, and [`TlsAcceptorHandle::reload`] swaps in the files' new contents for later
//! connections. A reload that fails (a file missing, half-written, or a key that does not
//! match) keeps the certificate that was in force.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rtc_core::dtls::Fingerprint;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate could not be loaded or generated.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable item of the expected kind.
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should have held.
        wanted: &'static str,
        /// What went wrong.
        error: pem::Error,
    },
    /// rustls refused the certificate chain and key (for example a key that does not match).
    Rejected(rustls::Error),
    /// The self-signed certificate could not be generated.
    Generate(rcgen::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem {
                path,
                wanted,
                error,
            } => write!(f, "{}: no {wanted} read: {error}", path.display()),
            Self::Rejected(error) => write!(f, "the certificate and key were refused: {error}"),
            Self::Generate(error) => write!(f, "generating a self-signed certificate: {error}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Where the certificate comes from, and so whether a reload can read anything new.
#[derive(Debug)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Fixed,
}

/// The TLS configuration of the HTTP port; clones share it, so a reload through one is seen
/// by all.
#[derive(Clone)]
pub struct TlsAcceptorHandle {
    source: Arc<Source>,
    current: Arc<RwLock<Loaded>>,
}

impl fmt::Debug for TlsAcceptorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptorHandle")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptorHandle {
    /// Loads a PEM certificate chain (leaf first) and PEM private key (PKCS#8, PKCS#1 or
    /// SEC1) from files, as Let's Encrypt's `fullchain.pem` and `privkey.pem`.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let config = config_from_files(&cert, &key)?;
        Ok(Self::with(Source::Files { cert, key }, config))
    }

    /// A certificate chain and key given as PEM text; [`reload`](Self::reload) keeps it.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let config = config_from_pem(cert_pem, key_pem, Path::new("<memory>"))?;
        Ok(Self::with(Source::Fixed, config))
    }

    /// A new self-signed certificate for `names` (DNS names or IP addresses), made now with
    /// a fresh key. Browsers warn about it: it is for trials on a LAN.
    pub fn self_signed(names: &[String]) -> Result<Self, TlsError> {
        let generated =
            rcgen::generate_simple_self_signed(names.to_vec()).map_err(TlsError::Generate)?;
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
            .map_err(|_| TlsError::Generate(rcgen::Error::CouldNotParseKeyPair))?;
        let config = server_config(vec![generated.cert.der().clone()], key)?;
        Ok(Self::with(Source::Fixed, config))
    }

    fn with(source: Source, loaded: Loaded) -> Self {
        Self {
            source: Arc::new(source),
            current: Arc::new(RwLock::new(loaded)),
        }
    }

    /// Re-reads the certificate and key files (what SIGHUP does). On an error the
    /// certificate in force stays; a certificate not loaded from files stays as it is.
    /// Returns whether a new certificate is now in force.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Source::Files { cert, key } = self.source.as_ref() else {
            return Ok(false);
        };
        let config = config_from_files(cert, key)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(true)
    }

    /// The files a reload reads, if the certificate came from files.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        match self.source.as_ref() {
            Source::Files { cert, key } => Some((cert, key)),
            Source::Fixed => None,
        }
    }

    /// The acceptor for a connection arriving now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&current.config))
    }

    /// The (leaf) certificate in force, DER-encoded.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .leaf
            .clone()
    }

    /// The SHA-256 fingerprint of the certificate in force, as `sha-256 AB:CD:...`, so that
    /// someone trying a self-signed certificate can check what their browser shows.
    pub fn fingerprint(&self) -> String {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Fingerprint::of_certificate_der(&current.leaf).to_string()
    }
}

/// A certificate in force: the rustls configuration and, for the fingerprint, its leaf.
struct Loaded {
    config: Arc<ServerConfig>,
    leaf: CertificateDer<'static>,
}

fn config_from_files(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsError::Pem {
            path: cert.to_owned(),
            wanted: "certificate",
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            wanted: "certificate",
            error: pem::Error::NoItemsFound,
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::Pem {
        path: key.to_owned(),
        wanted: "private key",
        error,
    })?;
    server_config(chain, key_der)
}

fn config_from_pem(cert_pem: &[u8], key_pem: &[u8], origin: &Path) -> Result<Loaded, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .and_then(|chain| {
            if chain.is_empty() {
                Err(pem::Error::NoItemsFound)
            } else {
                Ok(chain)
            }
        })
        .map_err(|error| TlsError::Pem {
            path: origin.to_owned(),
            wanted: "certificate",
            error,
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| TlsError::Pem {
        path: origin.to_owned(),
        wanted: "private key",
        error,
    })?;
    server_config(chain, key)
}

/// TLS 1.2 and 1.3 with aws-lc-rs, HTTP/1.1 only (the service speaks no HTTP/2).
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Loaded, TlsError> {
    let leaf = chain.first().cloned().ok_or(TlsError::Pem {
        path: PathBuf::from("<chain>"),
        wanted: "certificate",
        error: pem::Error::NoItemsFound,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rejected)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        leaf,
    })
}
