//! The archive: what a backup holds, as a plain byte stream of entries (encrypted by
//! `super::format` in the file, cut into frames on the wire).
//!
//! Owns: the entries, their framing, and the checks a reader makes on their order and
//! counts. Does not own: encryption, transport, or what restoring does with them.
//!
//! ```text
//! entry   = length (u32 BE, at most MAX_ENTRY) ‖ postcard(Entry)
//! archive = Header, File…, Record…, End        (nothing after End)
//! ```
//!
//! Records come in strictly increasing key order (the store's order), so a duplicated or
//! reordered record is an error; `End` repeats the counts, and they must match the
//! header's and what came. The archive is streamed: a parser holds one entry at a time.

use serde::{Deserialize, Serialize};

/// The archive layout this build writes and reads.
pub const ARCHIVE_FORMAT: u32 = 1;
/// The largest entry: far above any stored object (a request frame is at most 4 MiB).
pub const MAX_ENTRY: usize = 64 * 1024 * 1024;

/// One controller of the backed-up group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveMember {
    pub id: u64,
    pub name: String,
    pub address: String,
}

/// The first entry: where and when the copy was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveHeader {
    pub format: u32,
    /// The cluster revision of the copy.
    pub revision: u64,
    /// The Raft log index it was read at.
    pub applied_index: u64,
    /// Seconds since the Unix epoch, by the answering controller's clock.
    pub taken_at: u64,
    /// The controller that answered.
    pub controller: String,
    /// The controller group as of the copy.
    pub members: Vec<ArchiveMember>,
    /// How many records follow.
    pub records: u64,
}

/// One stored record: an API object, or an internal one (tokens, reservations, …),
/// byte for byte with its revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
}

impl Record {
    fn key(&self) -> (&str, &str, &str) {
        (&self.kind, &self.namespace, &self.name)
    }
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Header(ArchiveHeader),
    /// A file of the controller's `pki` directory (the CA, the secrets key).
    File {
        name: String,
        data: Vec<u8>,
    },
    Record(Record),
    End {
        records: u64,
        files: u32,
    },
}

/// Why an archive does not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("archive entry {index} declares {len} bytes, more than the {max} an entry may have")]
    EntryTooLarge { index: u64, len: usize, max: usize },
    #[error("archive entry {index} does not decode: {reason}")]
    Decode { index: u64, reason: String },
    #[error("archive entry does not encode: {reason}")]
    Encode { reason: String },
    #[error("archive layout {found}; this moor reads layout {ARCHIVE_FORMAT}")]
    Format { found: u32 },
    #[error("archive entry {index}: expected {expected}, found {found}")]
    Order {
        index: u64,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "archive entry {index}: record {key} is not after the record before it (duplicated or out of order)"
    )]
    RecordOrder { index: u64, key: String },
    #[error("archive entry {index}: file {name} appears twice")]
    DuplicateFile { index: u64, name: String },
    #[error("the archive {what}: {declared} declared, {found} present")]
    Count {
        what: &'static str,
        declared: u64,
        found: u64,
    },
    #[error("the archive ends before its end entry")]
    Incomplete,
    #[error("{len} bytes follow the archive's end entry")]
    Trailing { len: usize },
}

/// An entry with its length prefix, ready to append to an archive.
pub fn encode(entry: &Entry) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = vec![0u8; 4];
    postcard::to_io(entry, &mut bytes).map_err(|e| ArchiveError::Encode {
        reason: e.to_string(),
    })?;
    let len = bytes.len() - 4;
    if len > MAX_ENTRY {
        return Err(ArchiveError::EntryTooLarge {
            index: 0,
            len,
            max: MAX_ENTRY,
        });
    }
    // Within u32: MAX_ENTRY is far below 4 GiB.
    bytes[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(bytes)
}

fn entry_name(entry: &Entry) -> &'static str {
    match entry {
        Entry::Header(_) => "the header",
        Entry::File { .. } => "a file",
        Entry::Record(_) => "a record",
        Entry::End { .. } => "the end entry",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Files,
    Records,
    Ended,
}

/// Reads an archive from bytes fed in pieces of any size, checking as it goes.
#[derive(Debug)]
pub struct ArchiveParser {
    pending: Vec<u8>,
    start: usize,
    stage: Stage,
    index: u64,
    declared_records: u64,
    records: u64,
    files: Vec<String>,
    last_key: Option<(String, String, String)>,
}

impl Default for ArchiveParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ArchiveParser {
    pub fn new() -> Self {
        ArchiveParser {
            pending: Vec::new(),
            start: 0,
            stage: Stage::Header,
            index: 0,
            declared_records: 0,
            records: 0,
            files: Vec::new(),
            last_key: None,
        }
    }

    /// Takes the next bytes and returns the entries they complete, in order.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Entry>, ArchiveError> {
        if self.stage == Stage::Ended && !data.is_empty() {
            return Err(ArchiveError::Trailing { len: data.len() });
        }
        // Drop what was consumed before growing the buffer.
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        self.pending.extend_from_slice(data);
        let mut entries = Vec::new();
        loop {
            let available = &self.pending[self.start..];
            if available.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([available[0], available[1], available[2], available[3]])
                as usize;
            if len > MAX_ENTRY {
                return Err(ArchiveError::EntryTooLarge {
                    index: self.index,
                    len,
                    max: MAX_ENTRY,
                });
            }
            if available.len() < 4 + len {
                break;
            }
            let body = &available[4..4 + len];
            let entry: Entry = wire::frame::decode(body).map_err(|e| ArchiveError::Decode {
                index: self.index,
                reason: e.to_string(),
            })?;
            self.start += 4 + len;
            self.check(&entry)?;
            self.index += 1;
            entries.push(entry);
            if self.stage == Stage::Ended {
                let rest = self.pending.len() - self.start;
                if rest > 0 {
                    return Err(ArchiveError::Trailing { len: rest });
                }
                break;
            }
        }
        Ok(entries)
    }

    /// Checks that the archive ended with its end entry and nothing after it.
    pub fn finish(&self) -> Result<(), ArchiveError> {
        if self.stage != Stage::Ended {
            return Err(ArchiveError::Incomplete);
        }
        Ok(())
    }

    /// How many records have come so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn check(&mut self, entry: &Entry) -> Result<(), ArchiveError> {
        let order = |expected| ArchiveError::Order {
            index: self.index,
            expected,
            found: entry_name(entry),
        };
        match (self.stage, entry) {
            (Stage::Header, Entry::Header(header)) => {
                if header.format != ARCHIVE_FORMAT {
                    return Err(ArchiveError::Format {
                        found: header.format,
                    });
                }
                self.declared_records = header.records;
                self.stage = Stage::Files;
            }
            (Stage::Header, _) => return Err(order("the header")),
            (Stage::Files, Entry::File { name, .. }) => {
                if self.files.contains(name) {
                    return Err(ArchiveError::DuplicateFile {
                        index: self.index,
                        name: name.chars().take(64).collect(),
                    });
                }
                self.files.push(name.clone());
            }
            (Stage::Files | Stage::Records, Entry::Record(record)) => {
                if let Some(last) = &self.last_key
                    && (last.0.as_str(), last.1.as_str(), last.2.as_str()) >= record.key()
                {
                    return Err(ArchiveError::RecordOrder {
                        index: self.index,
                        key: format!("{}/{}/{}", record.kind, record.namespace, record.name)
                            .chars()
                            .take(200)
                            .collect(),
                    });
                }
                self.last_key = Some((
                    record.kind.clone(),
                    record.namespace.clone(),
                    record.name.clone(),
                ));
                self.records += 1;
                self.stage = Stage::Records;
            }
            (Stage::Files | Stage::Records, Entry::End { records, files }) => {
                for (what, declared, found) in [
                    ("records (end entry)", *records, self.records),
                    ("records (header)", self.declared_records, self.records),
                    ("files", u64::from(*files), self.files.len() as u64),
                ] {
                    if declared != found {
                        return Err(ArchiveError::Count {
                            what,
                            declared,
                            found,
                        });
                    }
                }
                self.stage = Stage::Ended;
            }
            (Stage::Records, _) => return Err(order("a record or the end entry")),
            (Stage::Files, _) => return Err(order("a file, a record or the end entry")),
            (Stage::Ended, _) => return Err(order("nothing after the end entry")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(records: u64) -> Entry {
        Entry::Header(ArchiveHeader {
            format: ARCHIVE_FORMAT,
            revision: 9,
            applied_index: 11,
            taken_at: 1,
            controller: "ctl-1".into(),
            members: vec![ArchiveMember {
                id: 1,
                name: "ctl-1".into(),
                address: "127.0.0.1:1".into(),
            }],
            records,
        })
    }

    fn record(name: &str) -> Entry {
        Entry::Record(Record {
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: name.into(),
            value: vec![7; 100],
            create_revision: 1,
            mod_revision: 2,
        })
    }

    fn archive(entries: &[Entry]) -> Vec<u8> {
        entries.iter().flat_map(|e| encode(e).unwrap()).collect()
    }

    fn parse_in_pieces(bytes: &[u8], piece: usize) -> Result<Vec<Entry>, ArchiveError> {
        let mut parser = ArchiveParser::new();
        let mut out = Vec::new();
        for part in bytes.chunks(piece.max(1)) {
            out.extend(parser.feed(part)?);
        }
        parser.finish()?;
        Ok(out)
    }

    fn good() -> Vec<Entry> {
        vec![
            header(2),
            Entry::File {
                name: "ca.pem".into(),
                data: b"pem".to_vec(),
            },
            record("a"),
            record("b"),
            Entry::End {
                records: 2,
                files: 1,
            },
        ]
    }

    #[test]
    fn an_archive_parses_back_whatever_the_pieces() {
        let entries = good();
        let bytes = archive(&entries);
        for piece in [1, 3, 4, 5, 64, bytes.len()] {
            assert_eq!(parse_in_pieces(&bytes, piece).unwrap(), entries, "{piece}");
        }
    }

    #[test]
    fn order_counts_and_ends_are_checked() {
        let mut entries = good();
        entries.swap(2, 3);
        let err = parse_in_pieces(&archive(&entries), 7).unwrap_err();
        assert!(
            matches!(err, ArchiveError::RecordOrder { index: 3, .. }),
            "{err}"
        );

        let mut entries = good();
        entries.insert(3, record("a"));
        let err = parse_in_pieces(&archive(&entries), 7).unwrap_err();
        assert!(matches!(err, ArchiveError::RecordOrder { .. }), "{err}");

        let mut entries = good();
        entries.remove(3);
        let err = parse_in_pieces(&archive(&entries), 7).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::Count {
                    declared: 2,
                    found: 1,
                    ..
                }
            ),
            "{err}"
        );

        let bytes = archive(&good());
        let err = parse_in_pieces(&bytes[..bytes.len() - 1], 7).unwrap_err();
        assert_eq!(err, ArchiveError::Incomplete);
        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = parse_in_pieces(&trailing, 7).unwrap_err();
        assert_eq!(err, ArchiveError::Trailing { len: 1 });

        let entries = vec![record("a")];
        let err = parse_in_pieces(&archive(&entries), 7).unwrap_err();
        assert!(err.to_string().contains("expected the header"), "{err}");

        let mut entries = good();
        entries.insert(3, header(2));
        let err = parse_in_pieces(&archive(&entries), 7).unwrap_err();
        assert!(matches!(err, ArchiveError::Order { .. }), "{err}");

        let mut entries = good();
        entries.insert(2, entries[1].clone());
        let err = parse_in_pieces(&archive(&entries), 7).unwrap_err();
        assert!(matches!(err, ArchiveError::DuplicateFile { .. }), "{err}");
    }

    #[test]
    fn hostile_lengths_and_bytes_are_errors() {
        let mut parser = ArchiveParser::new();
        let err = parser.feed(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, ArchiveError::EntryTooLarge { .. }), "{err}");
        let mut parser = ArchiveParser::new();
        let err = parser.feed(&[0, 0, 0, 2, 0xff, 0xff]).unwrap_err();
        assert!(matches!(err, ArchiveError::Decode { .. }), "{err}");
        let Entry::Header(mut h) = header(0) else {
            unreachable!()
        };
        h.format = 99;
        let err = parse_in_pieces(&archive(&[Entry::Header(h)]), 64).unwrap_err();
        assert_eq!(err, ArchiveError::Format { found: 99 });
    }
}
