//! Test certificates: a private CA and a server certificate for 127.0.0.1, made with openssl.

use std::path::Path;
use std::process::Command;

use super::{err, give_to_server_user, ServerError, ServerResult};

/// Whether the `openssl` command runs.
#[must_use]
pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) -> ServerResult<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| ServerError(format!("cannot run openssl: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Writes a CA (`ca.pem`) and a server certificate for 127.0.0.1 and `localhost` signed by it
/// (`server.pem`, key `server.key`, readable by the server user) into `dir`.
pub fn certificates(dir: &Path) -> ServerResult<()> {
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
    openssl(dir, &ca)?;
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
    openssl(dir, &csr)?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .map_err(|e| ServerError(format!("cannot write ext.cnf: {e}")))?;
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
    )?;
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| ServerError(format!("cannot restrict server.key: {e}")))?;
    give_to_server_user(&key)
}
