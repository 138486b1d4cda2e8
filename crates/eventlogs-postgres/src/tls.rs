//! TLS for PostgreSQL connections with rustls, verifying certificates against the webpki roots.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

/// A connector that verifies the server's certificate chain and host name against `roots_pem`
/// (PEM certificates of a private CA) when given, else against the webpki roots.
pub(crate) fn connector(roots_pem: Option<&[u8]>) -> Result<MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match roots_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("unreadable root certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unusable root certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("no certificate in the root certificates PEM".into());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
