//! The rustls server configuration for STARTTLS and implicit TLS.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::Error;

/// A TLS acceptor with the certificate chain and key in the PEM files given:
/// both files readable, the chain not empty, and the key the one whose
/// public key the (first) certificate carries.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    Ok(Certificate::load(cert, key)?.acceptor())
}

/// The certificate chain and key new TLS sessions are given. A reload
/// ([`Certificate::reload`]) replaces them for the sessions that follow;
/// sessions under way keep theirs.
#[derive(Debug)]
pub struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    /// Reads the PEM files; the key must be the certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificate>, Error> {
        Ok(Arc::new(Certificate { current: RwLock::new(Arc::new(certified_key(cert, key)?)) }))
    }

    /// Reads the PEM files again. On an error the certificate in use stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), Error> {
        let new = Arc::new(certified_key(cert, key)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// An acceptor whose handshakes use the certificate of the moment.
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Current(self.clone())));
        TlsAcceptor::from(Arc::new(config))
    }
}

#[derive(Debug)]
struct Current(Arc<Certificate>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The chain and key in the PEM files, checked to belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, Error> {
    let err = |what, path: &Path| {
        let path = path.display().to_string();
        move |e: &dyn std::fmt::Display| Error::Tls { what, path, reason: e.to_string() }
    };
    // Each file readable first, so that a missing one is named as such.
    std::fs::File::open(cert).map_err(|e| err("certificate", cert)(&e))?;
    std::fs::File::open(key).map_err(|e| err("key", key)(&e))?;
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err("certificate", cert)(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("certificate", cert)(&e))?;
    if certs.is_empty() {
        return Err(err("certificate", cert)(&"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err("key", key)(&e))?;
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key_der, &provider).map_err(|e| match e {
        tokio_rustls::rustls::Error::InconsistentKeys(tokio_rustls::rustls::InconsistentKeys::KeyMismatch) => {
            err("key", key)(&format!("does not match the certificate {}", cert.display()))
        }
        e => err("key", key)(&e),
    })
}

/// A TLS acceptor from DER certificates and key.
pub fn acceptor_from_der(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, tokio_rustls::rustls::Error> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
