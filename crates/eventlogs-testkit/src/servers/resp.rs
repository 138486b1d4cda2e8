//! A minimal blocking RESP client for readiness checks and raw cache poisoning in tests.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A reply, simplified: simple strings, errors and integers as text, bulk strings as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and the like.
    Status(String),
    /// `-ERR …`, `-MOVED …`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n` bulk string; `None` for a nil.
    Bulk(Option<Vec<u8>>),
    /// `*n` array.
    Array(Vec<Reply>),
}

/// Sends one command to `addr` (`host:port`) and reads its reply, within `timeout`.
pub fn command(addr: &str, args: &[&[u8]], timeout: Duration) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(
        &addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?,
        timeout,
    )?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out)?;
    read_reply(&mut BufReader::new(stream))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty reply"))?;
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest
            .parse()
            .map(Reply::Integer)
            .map_err(|_| bad("bad integer")),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad("bad length"))?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(len).map_err(|_| bad("bad length"))?;
            if len > 512 * 1024 * 1024 {
                return Err(bad("bulk string over 512 MiB"));
            }
            let mut data = vec![0; len + 2];
            reader.read_exact(&mut data)?;
            data.truncate(len);
            Ok(Reply::Bulk(Some(data)))
        }
        "*" => {
            let len: i64 = rest.parse().map_err(|_| bad("bad length"))?;
            let len = usize::try_from(len.max(0))
                .map_err(|_| bad("bad length"))?
                .min(1 << 20);
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<std::io::Result<_>>()
                .map(Reply::Array)
        }
        _ => Err(bad("unknown reply type")),
    }
}
