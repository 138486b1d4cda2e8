//! TLS for PostgreSQL connections with rustls, verifying certificates against the webpki roots.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

/// A connector that verifies the server's certificate chain and host name.
pub(crate) fn connector() -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
