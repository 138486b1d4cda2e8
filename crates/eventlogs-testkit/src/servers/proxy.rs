//! `TcpProxy`: a loopback TCP proxy that can swallow a server's replies, to lose an
//! acknowledgement after the server has committed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the proxy does with the bytes a server sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyMode {
    /// Pass everything through.
    Forward,
    /// Deliver requests to the server, but drop its next reply and close that connection, as a
    /// network failure right after the server acted would.
    SwallowReplies,
}

/// A proxy on a free port of 127.0.0.1 in front of `target`. Stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, mode: Option<Arc<AtomicU8>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(mode) = &mode {
            if mode.load(Ordering::SeqCst) == ProxyMode::SwallowReplies as u8 {
                // The reply is lost: close both sides without delivering it.
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl TcpProxy {
    /// Starts forwarding connections on a free port to `target`.
    pub fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let mode = Arc::new(AtomicU8::new(ProxyMode::Forward as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (m, s, c) = (
            Arc::clone(&mode),
            Arc::clone(&stop),
            Arc::clone(&connections),
        );
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        if let (Ok(c1), Ok(c2), Ok(s1), Ok(s2)) = (
                            client.try_clone(),
                            client.try_clone(),
                            server.try_clone(),
                            server.try_clone(),
                        ) {
                            if let Ok(mut all) = c.lock() {
                                all.push(c1);
                                all.push(s1);
                            }
                            let mode = Arc::clone(&m);
                            thread::spawn(move || pump(client, server, None));
                            thread::spawn(move || pump(s2, c2, Some(mode)));
                        }
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            mode,
            stop,
            connections,
        })
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches what happens to the server's replies.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(all) = self.connections.lock() {
            for stream in all.iter() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}
