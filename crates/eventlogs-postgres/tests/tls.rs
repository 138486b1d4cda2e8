//! TLS (feature `tls`): a PostgreSQL with a certificate from a private CA is reached with
//! `sslmode=require` when that CA is trusted, and refused when it is not.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use eventlogs_core::{AppendRequest, EventStore, LogId, LogState, NewEvent};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::servers::{
    give_to_server_user, local_binaries_available, local_servers_required, PostgresOptions,
    PostgresServer,
};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=eventlogs test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    give_to_server_user(&key).unwrap();
}

#[tokio::test]
async fn tls_connections_verify_the_server_certificate() {
    if !local_binaries_available() || Command::new("openssl").arg("version").output().is_err() {
        assert!(
            !local_servers_required(),
            "local servers required but PostgreSQL or openssl is missing"
        );
        eprintln!("skipping: PostgreSQL binaries or openssl not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("eventlogs-tls-{}", LogId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
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

    // The same server is refused when its CA is not trusted: certificates are verified.
    let untrusted = PostgresEventStore::builder(url).build().unwrap();
    let err = untrusted.load(&log, 0, 1).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}
