//! `CacheEntry`: the checked binary form of a cached reduction (header plus postcard body).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::mac::MAC_LEN;
use crate::{CacheKey, CacheKeys, Timestamp};

/// Layout of the header, big-endian, followed by the postcard-encoded body (the time of the
/// log's first event, in microseconds since the epoch, then the aggregate):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 3 | magic `ELR` |
/// | 3 | 1 | format version ([`FORMAT`]) |
/// | 4 | 4 | `through_index` |
/// | 8 | 8 | fingerprint of the last folded event |
/// | 16 | 8 | identity: hash of the cache key the entry was written for |
/// | 24 | 8 | `reduced_at`, microseconds since the epoch |
/// | 32 | 4 | body length |
/// | 36 | 8 | checksum of bytes 0..36 and the body |
pub const HEADER_LEN: usize = 44;
/// Offset of the big-endian `through_index` (for compare-and-set scripts).
pub const THROUGH_INDEX_OFFSET: usize = 4;
const MAGIC: &[u8; 3] = b"ELR";
/// The format version this library writes and reads (byte 3 of the header). Entries of other
/// versions are misses, replaced by the next write.
pub const FORMAT: u8 = 2;

/// A reduction as it is cached, with what `reduce` needs to confirm it against the store.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry<A> {
    /// Index of the last event folded.
    pub through_index: u32,
    /// [`RawEvent::fingerprint`](crate::RawEvent::fingerprint) of that event.
    pub fingerprint: u64,
    /// When the aggregate was folded.
    pub reduced_at: Timestamp,
    /// When the log's first event was recorded.
    pub created_at: Timestamp,
    /// The folded state.
    pub aggregate: A,
}

/// Why cached bytes were not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Over the configured maximum entry size.
    #[error("entry of {0} bytes is over the size limit")]
    TooLarge(usize),
    /// Shorter than its header says.
    #[error("entry is truncated")]
    Truncated,
    /// Not an entry of this library, or of a format version it does not read.
    #[error("unknown magic or format version")]
    UnknownFormat,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// Written for another key (another log, aggregate or aggregate version).
    #[error("entry belongs to another key")]
    Foreign,
    /// The body does not decode into the aggregate type.
    #[error("body does not decode: {0}")]
    Body(String),
    /// Keys are configured ([`CacheKeys`](crate::CacheKeys)) and the entry carries no MAC, or
    /// one that no accepted key verifies: it was not written by a holder of the key.
    #[error("entry is not authenticated by an accepted key")]
    Unauthenticated,
}

fn identity(key: &CacheKey) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_str().as_bytes())
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

impl<A> CacheEntry<A> {
    /// The `through_index` in an entry's header, or `None` when the bytes do not start with a
    /// header of this format. Used by compare-and-set in cache backends.
    #[must_use]
    pub fn peek_through_index(bytes: &[u8]) -> Option<u32> {
        if bytes.len() < HEADER_LEN || &bytes[..3] != MAGIC || bytes[3] != FORMAT {
            return None;
        }
        Some(be_u32(bytes, THROUGH_INDEX_OFFSET))
    }
}

impl<A: Serialize> CacheEntry<A> {
    /// Encodes the entry for `key`.
    pub fn encode(&self, key: &CacheKey) -> Result<Vec<u8>, EntryError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&self.through_index.to_be_bytes());
        out.extend_from_slice(&self.fingerprint.to_be_bytes());
        out.extend_from_slice(&identity(key).to_be_bytes());
        out.extend_from_slice(&self.reduced_at.as_unix_micros().to_be_bytes());
        out.extend_from_slice(&[0; 12]);
        let body = (self.created_at.as_unix_micros(), &self.aggregate);
        let mut out =
            postcard::to_extend(&body, out).map_err(|e| EntryError::Body(e.to_string()))?;
        let body_len = out.len() - HEADER_LEN;
        let body_len = u32::try_from(body_len).map_err(|_| EntryError::TooLarge(out.len()))?;
        out[32..36].copy_from_slice(&body_len.to_be_bytes());
        let checksum = checksum(&out);
        out[36..44].copy_from_slice(&checksum.to_be_bytes());
        Ok(out)
    }
}

fn checksum(entry: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&entry[..36]);
    hasher.update(&entry[HEADER_LEN..]);
    hasher.digest()
}

/// What an entry's checked header says, without decoding the aggregate (see
/// [`EntryHeader::inspect`]): for tools that look at cache entries of any aggregate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryHeader {
    /// Index of the last event folded.
    pub through_index: u32,
    /// [`RawEvent::fingerprint`](crate::RawEvent::fingerprint) of that event.
    pub fingerprint: u64,
    /// When the aggregate was folded.
    pub reduced_at: Timestamp,
    /// Bytes of the encoded body (the aggregate and the log's creation time).
    pub body_len: usize,
    /// Whether a MAC follows the body ([`CacheKeys`](crate::CacheKeys)); `inspect` does not
    /// check it.
    pub signed: bool,
}

impl EntryHeader {
    /// Checks bytes read for `key` as [`CacheEntry::decode`] does — size, format, length,
    /// checksum, key — except that the body is not decoded, and returns the header.
    pub fn inspect(key: &CacheKey, bytes: &[u8], max_len: usize) -> Result<Self, EntryError> {
        if bytes.len() > max_len {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        if bytes.len() < 4 {
            return Err(EntryError::Truncated);
        }
        if &bytes[..3] != MAGIC || bytes[3] != FORMAT {
            return Err(EntryError::UnknownFormat);
        }
        if bytes.len() < HEADER_LEN {
            return Err(EntryError::Truncated);
        }
        let body_len = be_u32(bytes, 32) as usize;
        let rest = bytes.len() - HEADER_LEN;
        let signed = if rest == body_len {
            false
        } else if body_len.checked_add(MAC_LEN) == Some(rest) {
            true
        } else {
            return Err(EntryError::Truncated);
        };
        if be_u64(bytes, 36) != checksum(&bytes[..HEADER_LEN + body_len]) {
            return Err(EntryError::Checksum);
        }
        if be_u64(bytes, 16) != identity(key) {
            return Err(EntryError::Foreign);
        }
        Ok(Self {
            through_index: be_u32(bytes, THROUGH_INDEX_OFFSET),
            fingerprint: be_u64(bytes, 8),
            reduced_at: Timestamp::from_unix_micros(be_u64(bytes, 24) as i64),
            body_len,
            signed,
        })
    }

    /// [`inspect`](Self::inspect) that also requires a MAC after the body which one of `keys`
    /// verifies ([`EntryError::Unauthenticated`] otherwise), as
    /// [`CacheEntry::decode_signed`] does.
    pub fn authenticate(
        key: &CacheKey,
        bytes: &[u8],
        max_len: usize,
        keys: &CacheKeys,
    ) -> Result<Self, EntryError> {
        let header = Self::inspect(key, bytes, max_len)?;
        let end = HEADER_LEN + header.body_len;
        if !header.signed || !keys.verify(&bytes[..end], &bytes[end..]) {
            return Err(EntryError::Unauthenticated);
        }
        Ok(header)
    }
}

impl<A: Serialize> CacheEntry<A> {
    /// [`encode`](Self::encode) followed by the MAC of the whole entry under `keys`' current
    /// key.
    pub fn encode_signed(&self, key: &CacheKey, keys: &CacheKeys) -> Result<Vec<u8>, EntryError> {
        let mut out = self.encode(key)?;
        let mac = keys.sign(&out);
        out.extend_from_slice(&mac);
        Ok(out)
    }
}

impl<A: DeserializeOwned> CacheEntry<A> {
    /// Decodes bytes read for `key`, refusing anything over `max_len` bytes, truncated,
    /// of another format, with a bad checksum, written for another key, or whose body does not
    /// decode. Never panics and never allocates more than the input's size for the header.
    pub fn decode(key: &CacheKey, bytes: &[u8], max_len: usize) -> Result<Self, EntryError> {
        let header = EntryHeader::inspect(key, bytes, max_len)?;
        Self::decode_body(&header, bytes)
    }

    /// [`decode`](Self::decode) that first requires a MAC after the body which one of `keys`
    /// verifies ([`EntryError::Unauthenticated`] otherwise).
    pub fn decode_signed(
        key: &CacheKey,
        bytes: &[u8],
        max_len: usize,
        keys: &CacheKeys,
    ) -> Result<Self, EntryError> {
        let header = EntryHeader::authenticate(key, bytes, max_len, keys)?;
        Self::decode_body(&header, bytes)
    }

    fn decode_body(header: &EntryHeader, bytes: &[u8]) -> Result<Self, EntryError> {
        let ((created_at, aggregate), rest) =
            postcard::take_from_bytes::<(i64, A)>(&bytes[HEADER_LEN..HEADER_LEN + header.body_len])
                .map_err(|e| EntryError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(EntryError::Body(format!(
                "{} bytes left over after the aggregate",
                rest.len()
            )));
        }
        Ok(Self {
            through_index: header.through_index,
            fingerprint: header.fingerprint,
            reduced_at: header.reduced_at,
            created_at: Timestamp::from_unix_micros(created_at),
            aggregate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogId;
    use proptest::prelude::*;

    fn entry() -> CacheEntry<Vec<u32>> {
        CacheEntry {
            through_index: 41,
            fingerprint: 0xfeed,
            reduced_at: Timestamp::from_unix_micros(1_700_000_000_000_000),
            created_at: Timestamp::from_unix_micros(1_600_000_000_000_000),
            aggregate: vec![1, 2, 3],
        }
    }

    #[test]
    fn round_trips_and_exposes_the_index_at_its_offset() {
        let key = CacheKey::new("agg", 1, LogId::new());
        let bytes = entry().encode(&key).unwrap();
        assert_eq!(CacheEntry::<()>::peek_through_index(&bytes), Some(41));
        assert_eq!(CacheEntry::decode(&key, &bytes, 1024).unwrap(), entry());
        let header = EntryHeader::inspect(&key, &bytes, 1024).unwrap();
        assert_eq!(
            (header.through_index, header.fingerprint, header.reduced_at),
            (41, 0xfeed, entry().reduced_at)
        );
        assert_eq!(header.body_len, bytes.len() - HEADER_LEN);
        let other = CacheKey::new("agg", 2, key.log_id());
        assert_eq!(
            EntryHeader::inspect(&other, &bytes, 1024),
            Err(EntryError::Foreign)
        );
    }

    #[test]
    fn refuses_every_kind_of_damage() {
        let key = CacheKey::new("agg", 1, LogId::new());
        let bytes = entry().encode(&key).unwrap();
        let decode = |b: &[u8]| CacheEntry::<Vec<u32>>::decode(&key, b, 1024).unwrap_err();
        assert_eq!(
            CacheEntry::<Vec<u32>>::decode(&key, &bytes, 10).unwrap_err(),
            EntryError::TooLarge(bytes.len())
        );
        assert_eq!(decode(&bytes[..bytes.len() - 1]), EntryError::Truncated);
        assert_eq!(decode(&bytes[..20]), EntryError::Truncated);
        assert_eq!(decode(b"garbage bytes"), EntryError::UnknownFormat);
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&flipped), EntryError::Checksum);
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&huge), EntryError::Truncated);
        let other = CacheKey::new("agg", 2, key.log_id());
        assert_eq!(
            CacheEntry::<Vec<u32>>::decode(&other, &bytes, 1024).unwrap_err(),
            EntryError::Foreign
        );
        // Bodies written for another type: a value the type cannot hold, and a body longer
        // than the type reads (postcard is not self-describing, so a body of the same shape
        // does decode: that is why the aggregate's name and version are part of the key).
        let two = entry_with(2u8).encode(&key).unwrap();
        assert!(matches!(
            CacheEntry::<bool>::decode(&key, &two, 1024),
            Err(EntryError::Body(_))
        ));
        let pair = entry_with((1u8, 2u8)).encode(&key).unwrap();
        assert!(matches!(
            CacheEntry::<u8>::decode(&key, &pair, 1024),
            Err(EntryError::Body(_))
        ));
    }

    fn entry_with<A>(aggregate: A) -> CacheEntry<A> {
        CacheEntry {
            through_index: 1,
            fingerprint: 2,
            reduced_at: Timestamp::UNIX_EPOCH,
            created_at: Timestamp::UNIX_EPOCH,
            aggregate,
        }
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_or_mutated_bytes(
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
            flip in any::<(usize, u8)>(),
        ) {
            let key = CacheKey::new("agg", 1, LogId::from_u128(7));
            let _ = CacheEntry::<Vec<String>>::decode(&key, &garbage, 1 << 20);
            let mut bytes = entry().encode(&key).unwrap();
            let at = flip.0 % bytes.len();
            bytes[at] ^= flip.1 | 1;
            prop_assert!(CacheEntry::<Vec<u32>>::decode(&key, &bytes, 1 << 20).is_err());
        }
    }

    #[test]
    fn authenticate_accepts_current_and_previous_keys_only() {
        let key = CacheKey::new("agg", 1, LogId::new());
        let (old, new) = (CacheKeys::new([1; 32]), CacheKeys::new([2; 32]));
        let rotating = CacheKeys::new([2; 32]).with_previous([1; 32]);
        let signed_old = entry().encode_signed(&key, &old).unwrap();
        let unsigned = entry().encode(&key).unwrap();
        let header = EntryHeader::authenticate(&key, &signed_old, 1024, &rotating).unwrap();
        assert!(header.signed);
        assert_eq!(header.through_index, 41);
        let refused = |bytes: &[u8], keys: &CacheKeys| {
            EntryHeader::authenticate(&key, bytes, 1024, keys).unwrap_err()
        };
        assert_eq!(refused(&signed_old, &new), EntryError::Unauthenticated);
        assert_eq!(refused(&unsigned, &rotating), EntryError::Unauthenticated);
        // Damage is still told apart from a missing key.
        assert_eq!(
            refused(&signed_old[..signed_old.len() - 1], &rotating),
            EntryError::Truncated
        );
    }
}
