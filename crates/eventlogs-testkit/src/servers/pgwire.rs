//! A minimal PostgreSQL readiness probe over the wire protocol: start a session with trust
//! authentication and see `ReadyForQuery`, with the standard library only (no local binaries
//! are needed, so it serves containers too).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether the server on `127.0.0.1:port` accepts a session of `user` on `database` (trust
/// authentication) within `timeout`: the startup completes with `ReadyForQuery`. A server that
/// is starting up, recovering or shutting down answers with an error and is not ready.
#[must_use]
pub fn postgres_ready(port: u16, user: &str, database: &str, timeout: Duration) -> bool {
    probe(port, user, database, timeout).unwrap_or(false)
}

fn probe(port: u16, user: &str, database: &str, timeout: Duration) -> std::io::Result<bool> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let length = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    stream.write_all(&length.to_be_bytes())?;
    stream.write_all(&body)?;
    // Messages: a type byte and a length that counts itself. Read until the session is ready
    // or refused; bound the work whatever the server sends.
    for _ in 0..64 {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header)?;
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if !(4..=64 * 1024).contains(&length) {
            return Ok(false);
        }
        let mut payload = vec![0u8; length - 4];
        stream.read_exact(&mut payload)?;
        match header[0] {
            // Authentication: only "ok" (0) is expected with trust.
            b'R' if payload.get(..4) != Some(&[0, 0, 0, 0]) => return Ok(false),
            b'Z' => {
                let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
                return Ok(true);
            }
            b'E' => return Ok(false),
            _ => {}
        }
    }
    Ok(false)
}
