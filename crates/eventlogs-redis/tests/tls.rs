//! TLS (feature `tls`): a Redis with a certificate from a private CA is refused, with a
//! configuration error, while that CA is not trusted, and reached over `rediss://` once it is
//! (through `SSL_CERT_FILE`, which the system-roots loader reads). One test per binary, since
//! it sets a process environment variable.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use eventlogs_core::{backend::CacheKey, Error, InvalidInput, LogId, ReductionCache};
use eventlogs_redis::RedisReductionCache;
use eventlogs_testkit::cache_suite::entry;
use eventlogs_testkit::servers::{
    certificates, openssl_available, redis_available, run_locally, RedisServer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_verify_the_server_certificate() {
    if !run_locally(
        redis_available() && openssl_available(),
        "redis-server or openssl is",
        "the TLS server is configured with certificate files made in a host temp dir",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("eventlogs-redis-tls-{}", LogId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir).unwrap();
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let file = |name: &str| dir.join(name).display().to_string();
    let server = RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &file("server.pem"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
        "--tls-auth-clients",
        "no",
    ])
    .unwrap();
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let connect = || {
        RedisReductionCache::builder(&url)
            .key_prefix("tls")
            .connect_timeout(std::time::Duration::from_secs(2))
            .build()
    };

    let Err(untrusted) = connect().await else {
        panic!("a certificate from an untrusted CA is refused");
    };
    // Retrying cannot help: a configuration error that says how to trust the CA.
    assert!(
        matches!(&untrusted, Error::InvalidInput(InvalidInput::Config(message))
            if message.contains("not trusted") && message.contains("SSL_CERT_FILE")),
        "{untrusted:?}"
    );
    assert!(!untrusted.is_retryable(), "{untrusted}");
    eprintln!("untrusted CA: {untrusted}");

    std::env::set_var("SSL_CERT_FILE", file("ca.pem"));
    let cache = connect().await.unwrap();
    let key = CacheKey::new("tls", 1, LogId::new());
    let written = entry(&key, 3);
    assert!(cache.put(&key, 3, &written).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap(), Some(written));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
