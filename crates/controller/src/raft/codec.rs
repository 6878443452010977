//! Stored records: one format version byte, then postcard.
//!
//! Owns the byte layout of every record this module writes (log entries, meta values,
//! objects, snapshots). Does not own which type a table holds — postcard records no types,
//! so each table (and each meta key, see `db::MetaKey`) is read with exactly one type.
//!
//! ```text
//! [ FORMAT_VERSION ][ postcard(value) ... ]
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The layout written today. A reader refuses any other value rather than guess.
pub const FORMAT_VERSION: u8 = 1;

/// Why a stored record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record is empty")]
    Empty,
    #[error("record has format version {found}, this build reads {FORMAT_VERSION}")]
    UnknownVersion { found: u8 },
    #[error("record does not decode")]
    Decode(#[source] postcard::Error),
    #[error("record has {extra} trailing bytes")]
    TrailingBytes { extra: usize },
    #[error("record does not encode")]
    Encode(#[source] postcard::Error),
}

/// Encodes `value` behind the version byte.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![FORMAT_VERSION];
    postcard::to_io(value, &mut bytes).map_err(CodecError::Encode)?;
    Ok(bytes)
}

/// Encodes `value` behind the version byte into `out`, as [`encode`] would into memory.
pub fn encode_to<T: Serialize + ?Sized>(
    value: &T,
    out: &mut impl std::io::Write,
) -> Result<(), CodecError> {
    out.write_all(&[FORMAT_VERSION])
        .map_err(|_| CodecError::Encode(postcard::Error::SerializeBufferFull))?;
    postcard::to_io(value, out).map_err(CodecError::Encode)?;
    Ok(())
}

/// Decodes a record written by [`encode`] with the same type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion { found: version });
    }
    let (value, rest) = postcard::take_from_bytes(body).map_err(CodecError::Decode)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { extra: rest.len() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_value() {
        let bytes = encode(&(7u64, "pod".to_string())).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "pod".to_string()));
    }

    #[test]
    fn refuses_an_unknown_version() {
        let mut bytes = encode(&7u64).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(CodecError::UnknownVersion { found: 9 })
        ));
    }

    #[test]
    fn refuses_empty_and_trailing_bytes() {
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        let mut bytes = encode(&7u64).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(CodecError::TrailingBytes { extra: 1 })
        ));
    }
}
