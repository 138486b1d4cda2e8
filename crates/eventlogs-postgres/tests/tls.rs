//! TLS (feature `tls`): a PostgreSQL with a certificate from a private CA is reached with
//! `sslmode=require` when that CA is trusted, and refused with a configuration error when it
//! is not.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    Error, EventStore, InvalidInput, LogId, LogState,
};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::servers::{
    certificates, local_binaries_available, openssl_available, run_locally, PostgresOptions,
    PostgresServer,
};

#[tokio::test]
async fn tls_connections_verify_the_server_certificate() {
    if !run_locally(
        local_binaries_available() && openssl_available(),
        "PostgreSQL, Redis or openssl is",
        "the TLS server is configured with certificate files made in a host temp dir",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("eventlogs-tls-{}", LogId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir).unwrap();
    let options = PostgresOptions::default()
        .setting("ssl=on")
        .setting(format!(
            "ssl_cert_file={}",
            dir.join("server.pem").display()
        ))
        .setting(format!("ssl_key_file={}", dir.join("server.key").display()));
    let pg = tokio::task::spawn_blocking(move || PostgresServer::start_with(&options))
        .await
        .unwrap()
        .unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/eventlogs?sslmode=require",
        pg.port()
    );
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();

    let trusted = PostgresEventStore::builder(url.clone())
        .tls_root_certificates_pem(ca)
        .build()
        .unwrap();
    trusted.migrate().await.unwrap();
    let log = LogId::new();
    let req = AppendRequest::new(
        LogState::empty(log),
        vec![NewEvent::new(&1).unwrap()],
        None,
        None,
    );
    trusted.append(&req).await.unwrap();
    assert_eq!(trusted.load(&log, 0, 1).await.unwrap().len(), 1);
    let client = trusted.pool().get().await.unwrap();
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is encrypted");

    // The same server is refused when its CA is not trusted: certificates are verified, and
    // the refusal is a configuration error that says how to trust the CA, not a retryable one.
    let untrusted = PostgresEventStore::builder(url).build().unwrap();
    let err = untrusted.load(&log, 0, 1).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(InvalidInput::Config(message))
            if message.contains("not trusted") && message.contains("tls_root_certificates_pem")),
        "{err:?}"
    );
    assert!(!err.is_retryable(), "{err:?}");
    eprintln!("untrusted CA: {err}");
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}
