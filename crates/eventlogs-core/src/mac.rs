//! `CacheKeys`: the secret keys that authenticate cache entries (keyed BLAKE3), with rotation.

use std::fmt;

use crate::InvalidInput;

/// Bytes of the MAC a signed cache entry carries after its body.
pub(crate) const MAC_LEN: usize = 32;

/// Secret keys for cache entries: entries are written with a MAC under the current key, and an
/// entry is trusted only when its MAC verifies under the current key or one of the previous
/// keys still accepted. Without it, the entry checksum protects against damage but not against
/// anyone who can write to the cache; with it, an entry forged or altered without the key is
/// corrupt (a miss, refolded and replaced).
///
/// Rotation: deploy the new key as current with the old one in
/// [`with_previous`](Self::with_previous), so entries written by processes still on the old
/// key keep being read; once every process writes with the new key (and old entries have been
/// rewritten, or may just miss once), drop the old key.
///
/// `Debug` shows each key's short id (a hash of the key), never the key.
///
/// ```
/// use eventlogs_core::CacheKeys;
/// let keys = CacheKeys::new([7; 32]).with_previous([3; 32]);
/// assert!(!format!("{keys:?}").contains("7, 7"));
/// ```
#[derive(Clone)]
pub struct CacheKeys {
    current: [u8; 32],
    previous: Vec<[u8; 32]>,
}

impl CacheKeys {
    /// Entries are signed and checked with `key` (32 random bytes, kept secret).
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            current: key,
            previous: Vec::new(),
        }
    }

    /// Entries signed with `key` are still accepted (it is never used to sign).
    #[must_use]
    pub fn with_previous(mut self, key: [u8; 32]) -> Self {
        self.previous.push(key);
        self
    }

    /// A key written as 64 hexadecimal digits (as `openssl rand -hex 32` prints it), for keys
    /// kept in environment variables or secret stores. Surrounding whitespace is ignored; the
    /// error never repeats the text.
    ///
    /// ```
    /// use eventlogs_core::CacheKeys;
    /// let key = CacheKeys::parse_hex_key(&"ab".repeat(32)).unwrap();
    /// let keys = CacheKeys::new(key);
    /// assert!(CacheKeys::parse_hex_key("not a key").is_err());
    /// ```
    pub fn parse_hex_key(text: &str) -> Result<[u8; 32], InvalidInput> {
        let text = text.trim();
        let mut key = [0u8; 32];
        hex::decode_to_slice(text, &mut key).map_err(|e| {
            // Not `hex`'s own message: it quotes the offending character of the secret.
            let what = match e {
                hex::FromHexError::InvalidHexCharacter { index, .. } => {
                    format!("character {} is not hexadecimal", index + 1)
                }
                _ => format!("got {} characters", text.len()),
            };
            InvalidInput::Config(format!(
                "a cache key is 64 hexadecimal digits (32 bytes): {what}"
            ))
        })?;
        Ok(key)
    }

    /// The MAC of `signed` under the current key.
    pub(crate) fn sign(&self, signed: &[u8]) -> [u8; MAC_LEN] {
        *blake3::keyed_hash(&self.current, signed).as_bytes()
    }

    /// Whether `mac` is the MAC of `signed` under any accepted key (compared in constant time).
    pub(crate) fn verify(&self, signed: &[u8], mac: &[u8]) -> bool {
        let Ok(mac) = <[u8; MAC_LEN]>::try_from(mac) else {
            return false;
        };
        let mac = blake3::Hash::from(mac);
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|key| blake3::keyed_hash(key, signed) == mac)
    }
}

/// A short, non-secret id of a key.
fn id(key: &[u8; 32]) -> String {
    let hash = blake3::hash(key);
    hash.as_bytes()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl fmt::Debug for CacheKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKeys")
            .field("current", &id(&self.current))
            .field(
                "previous",
                &self.previous.iter().map(id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_parse_and_errors_never_repeat_them() {
        let text = format!(" {}\n", "0a".repeat(32));
        assert_eq!(CacheKeys::parse_hex_key(&text).unwrap(), [0x0a; 32]);
        assert_eq!(
            CacheKeys::parse_hex_key(&"AB".repeat(32)).unwrap(),
            [0xab; 32]
        );
        for bad in [
            "",
            "0a0a",
            &"0a".repeat(33),
            &format!("{}zq", "0a".repeat(31)),
        ] {
            let error = CacheKeys::parse_hex_key(bad).unwrap_err().to_string();
            assert!(error.contains("64 hexadecimal digits"), "{error}");
            assert!(!error.contains('z') && !error.contains('q'), "{error}");
        }
    }
}
