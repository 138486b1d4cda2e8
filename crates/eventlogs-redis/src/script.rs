//! The Lua scripts (bounded read, compare-and-set write), run with `EVALSHA` and reloaded on `NOSCRIPT`.
//!
//! Each script touches exactly one key, passed in `KEYS[1]`, so both work on Redis Cluster.
//! Scripts are sent by hash; when a server does not know the hash (first use, restart,
//! `SCRIPT FLUSH`, another cluster node) the call is repeated once with `EVAL`, which also
//! caches the script on that server.

use std::sync::LazyLock;

use eventlogs_core::backend::{CACHE_FORMAT, CACHE_HEADER_LEN, THROUGH_INDEX_OFFSET};
use eventlogs_core::Error;
use fred::error::Error as FredError;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand, Value};
use fred::util::redis_keyslot;

use crate::error::unexpected_reply;

/// The magic and format version that start an entry header (see `eventlogs_core::backend::CacheEntry`),
/// as a Lua string literal.
fn header_start_lua() -> String {
    format!("'ELR\\{}'", CACHE_FORMAT)
}

/// `get`, in one round trip: `KEYS[1]`, `ARGV[1]` = the last byte offset to read
/// (`max_entry_bytes`).
///
/// Returns nil when the key does not exist (a miss), else at most `ARGV[1] + 1` bytes of the
/// value (`GETRANGE` never reads the rest, so an oversized value reads as `max_entry_bytes + 1`
/// bytes, which the decoder refuses). A key of another type reads as an empty value, which the
/// decoder refuses too: both are unusable entries, removed and replaced by the next write.
/// Atomic, so a key written between the read and the existence check cannot blur the answer.
const GET: &str = r"
local value = redis.pcall('GETRANGE', KEYS[1], 0, ARGV[1])
if type(value) == 'table' then
  if value.err and string.sub(value.err, 1, 9) == 'WRONGTYPE' then
    return ''
  end
  return value
end
if value == '' and redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return value
";

/// What the `get` script's reply says: `None` for no key, else the bytes read, never more
/// than `max_entry_bytes + 1` whatever the server sent.
pub(crate) fn read_reply(
    operation: &'static str,
    reply: Value,
    max_entry_bytes: usize,
) -> Result<Option<Vec<u8>>, Error> {
    let mut bytes = match reply {
        // RESP3 turns the script's `false` into a boolean, RESP2 into nil.
        Value::Null | Value::Boolean(false) => return Ok(None),
        // Without a copy when the reply buffer is not shared.
        Value::Bytes(bytes) => Vec::from(bytes),
        Value::String(text) => Vec::from(text.into_inner()),
        other => return Err(unexpected_reply(operation, &other.kind())),
    };
    bytes.truncate(max_entry_bytes.saturating_add(1));
    Ok(Some(bytes))
}

/// `put`: `KEYS[1]`, `ARGV[1]` = `through_index`, `ARGV[2]` = the entry, `ARGV[3]` = TTL in
/// milliseconds (`0`: none).
///
/// Writes unless the stored value starts with a readable header (at least the header's
/// length, the magic and format version) whose big-endian `through_index` is at least
/// `ARGV[1]`. Returns 1 when it wrote, 0 when not.
fn put_source() -> String {
    let header_end = CACHE_HEADER_LEN - 1;
    let header_start = header_start_lua();
    let first = THROUGH_INDEX_OFFSET + 1;
    let last = THROUGH_INDEX_OFFSET + 4;
    format!(
        r"
local current = redis.pcall('GETRANGE', KEYS[1], 0, {header_end})
if type(current) == 'string' and #current == {CACHE_HEADER_LEN}
    and string.sub(current, 1, 4) == {header_start} then
  local b1, b2, b3, b4 = string.byte(current, {first}, {last})
  local stored = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  if stored >= tonumber(ARGV[1]) then
    return 0
  end
end
if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"
    )
}

/// A Lua script with its SHA-1, run by hash.
#[derive(Debug)]
pub(crate) struct LuaScript {
    sha1: Value,
    source: Value,
}

/// The two scripts of the cache, hashed once per process. See [`GET`].
pub(crate) static GET_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(GET.into()));
/// See [`put_source`].
pub(crate) static PUT_SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| LuaScript::new(put_source()));

fn is_noscript(error: &FredError) -> bool {
    error.details().starts_with("NOSCRIPT")
}

impl LuaScript {
    fn new(source: String) -> Self {
        let script = Script::from_lua(source);
        Self {
            sha1: Value::String(script.sha1().clone()),
            source: Value::String(script.lua().cloned().unwrap_or_default()),
        }
    }

    /// Runs the script on the node holding `key` with `EVALSHA`, falling back to `EVAL` once
    /// when that node does not have it cached.
    ///
    /// Sent as custom commands routed to the key's hash slot, so the client's per-command
    /// options (deadline, fail fast, no replay) apply: fred's `WithOptions` wrapper does not
    /// offer its Lua interface.
    pub(crate) async fn run<C>(
        &self,
        client: &C,
        key: &str,
        args: &[Value],
    ) -> Result<Value, FredError>
    where
        C: ClientLike,
    {
        let slot = redis_keyslot(key.as_bytes());
        let command = |name| CustomCommand::new_static(name, ClusterHash::Custom(slot), false);
        let with = |script: &Value| {
            let mut all = Vec::with_capacity(3 + args.len());
            all.push(script.clone());
            all.push(Value::Integer(1));
            all.push(Value::from(key));
            all.extend(args.iter().cloned());
            all
        };
        match client.custom(command("EVALSHA"), with(&self.sha1)).await {
            Err(error) if is_noscript(&error) => {
                tracing::debug!("redis does not have the script cached; sending it");
                client.custom(command("EVAL"), with(&self.source)).await
            }
            result => result,
        }
    }

    /// The script's SHA-1, as `EVALSHA` sends it.
    #[cfg(test)]
    pub(crate) fn sha1(&self) -> String {
        self.sha1.as_string().unwrap_or_default()
    }

    /// The Lua source.
    #[cfg(test)]
    pub(crate) fn source(&self) -> String {
        self.source.as_string().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use eventlogs_core::{
        backend::{CacheEntry, CacheKey},
        LogId, Timestamp,
    };

    #[test]
    fn put_script_reads_the_header_the_core_writes() {
        let key = CacheKey::new("agg", 1, LogId::new());
        let bytes = CacheEntry {
            through_index: 0x0102_0304,
            fingerprint: 9,
            reduced_at: Timestamp::now(),
            created_at: Timestamp::now(),
            aggregate: 5u32,
        }
        .encode(&key)
        .unwrap();
        // Magic and format version as the script compares them.
        assert_eq!(&bytes[..4], &[b'E', b'L', b'R', CACHE_FORMAT]);
        assert_eq!(
            CacheEntry::<()>::peek_through_index(&bytes),
            Some(0x0102_0304)
        );
        assert_eq!(
            &bytes[THROUGH_INDEX_OFFSET..THROUGH_INDEX_OFFSET + 4],
            &[1, 2, 3, 4]
        );
        let source = PUT_SCRIPT.source();
        assert!(source.contains("GETRANGE', KEYS[1], 0, 43)"), "{source}");
        assert!(source.contains("#current == 44"), "{source}");
        assert!(source.contains("string.byte(current, 5, 8)"), "{source}");
        assert!(
            source.contains(&format!(r"== 'ELR\{CACHE_FORMAT}'")),
            "{source}"
        );
        assert_eq!(PUT_SCRIPT.sha1().len(), 40);
        assert_ne!(PUT_SCRIPT.sha1(), GET_SCRIPT.sha1());
    }

    #[test]
    fn read_replies_decode_to_a_miss_or_bounded_bytes() {
        assert_eq!(read_reply("get", Value::Null, 10).unwrap(), None);
        assert_eq!(read_reply("get", Value::Boolean(false), 10).unwrap(), None);
        assert_eq!(
            read_reply("get", Value::Bytes(b"".to_vec().into()), 10).unwrap(),
            Some(vec![])
        );
        assert_eq!(
            read_reply("get", Value::Bytes(b"abc".to_vec().into()), 10).unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(
            read_reply("get", Value::from("abc"), 10).unwrap(),
            Some(b"abc".to_vec())
        );
        // A server that sends more than it was asked for is cut at the bound.
        let big = Value::Bytes(vec![7u8; 100].into());
        assert_eq!(read_reply("get", big, 10).unwrap().unwrap().len(), 11);
        assert_eq!(
            read_reply("get", Value::Bytes(vec![7u8; 3].into()), usize::MAX)
                .unwrap()
                .unwrap()
                .len(),
            3
        );
        for odd in [
            Value::Integer(1),
            Value::Boolean(true),
            Value::Array(vec![]),
        ] {
            let error = read_reply("get", odd, 10).unwrap_err();
            assert_eq!(
                error.kind(),
                eventlogs_core::ErrorKind::Unavailable,
                "{error}"
            );
        }
    }
}
