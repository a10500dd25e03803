//! The rustls server configuration for STARTTLS and implicit TLS.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::Error;

/// A TLS acceptor with the certificate chain and key in the PEM files given:
/// both files readable, the chain not empty, and the key the one whose
/// public key the (first) certificate carries.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
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
    acceptor_from_der(certs, key_der).map_err(|e| match e {
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
