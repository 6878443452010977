//! The backup file format against damage of every kind, and restore into a data directory.

use std::io::Cursor;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::SystemTime;

use super::archive::{self, ARCHIVE_FORMAT, ArchiveHeader, ArchiveMember, Entry, Record};
use super::format::{BackupFileError, BackupReader, BackupWriter, HEADER_LEN, Params};
use super::*;
use crate::raft::{Storage, StorageOptions};

const PASS: &[u8] = b"correct horse battery staple";
/// Small chunks so that a short plaintext spans many; few iterations so tests are fast.
const SMALL: Params = Params {
    iterations: 10,
    chunk_size: 64,
};
const SEALED: usize = 64 + 16;

fn seal(plain: &[u8], pass: &[u8], params: Params) -> Vec<u8> {
    let mut writer = BackupWriter::new(Vec::new(), pass, params).unwrap();
    // In uneven pieces, as a stream arrives.
    for piece in plain.chunks(37) {
        writer.write(piece).unwrap();
    }
    writer.finish().unwrap()
}

fn open(file: &[u8], pass: &[u8]) -> Result<Vec<u8>, BackupFileError> {
    let mut reader = BackupReader::open(Cursor::new(file), pass)?;
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk()? {
        out.extend_from_slice(chunk);
    }
    Ok(out)
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// The byte ranges of the chunks of `file`, sealed with `SMALL`.
fn chunks(file: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < file.len() {
        let end = (at + SEALED).min(file.len());
        out.push(at..end);
        at = end;
    }
    out
}

#[test]
fn any_plaintext_round_trips() {
    for len in [0, 1, 63, 64, 65, 128, 200, 1000] {
        let plain = plaintext(len);
        let file = seal(&plain, PASS, SMALL);
        // Full chunks, and always a final one shorter than a full chunk.
        assert_eq!(file.len(), HEADER_LEN + (len / 64 + 1) * 16 + len, "{len}");
        assert_eq!(open(&file, PASS).unwrap(), plain, "{len}");
    }
    // The defaults too, once.
    let plain = plaintext(200_000);
    let file = seal(&plain, PASS, Params::default());
    assert_eq!(open(&file, PASS).unwrap(), plain);
}

#[test]
fn a_wrong_or_empty_passphrase_is_refused_before_any_content() {
    let file = seal(&plaintext(300), PASS, SMALL);
    let err = open(&file, b"correct horse battery stapler").unwrap_err();
    assert!(matches!(err, BackupFileError::WrongPassphrase), "{err}");
    assert_eq!(
        err.to_string(),
        "wrong passphrase (or the file's header is damaged)"
    );
    assert!(matches!(
        open(&file, b""),
        Err(BackupFileError::EmptyPassphrase)
    ));
    assert!(matches!(
        BackupWriter::new(Vec::new(), b"", SMALL),
        Err(BackupFileError::EmptyPassphrase)
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let file = seal(&plaintext(300), PASS, SMALL);
    let boundaries: Vec<usize> = chunks(&file).iter().map(|c| c.end).collect();
    for len in 0..file.len() {
        let err = open(&file[..len], PASS).unwrap_err();
        let expected = if len < HEADER_LEN {
            matches!(
                err,
                BackupFileError::ShortHeader { .. } | BackupFileError::Magic
            )
        } else if len == HEADER_LEN || boundaries.contains(&len) {
            matches!(err, BackupFileError::Truncated { .. })
        } else {
            matches!(err, BackupFileError::Chunk { .. })
        };
        assert!(expected, "cut at {len}: {err}");
    }
    let err = open(&file[..HEADER_LEN + SEALED], PASS).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the file ends after chunk 1 at byte {} without its final chunk: it is truncated",
            HEADER_LEN + SEALED
        )
    );
    // A plaintext of whole chunks ends with an empty final chunk, which is missed too.
    let whole = seal(&plaintext(128), PASS, SMALL);
    let err = open(&whole[..whole.len() - 16], PASS).unwrap_err();
    assert!(
        matches!(err, BackupFileError::Truncated { chunks: 2, .. }),
        "{err}"
    );
}

#[test]
fn every_flipped_byte_is_an_error() {
    let file = seal(&plaintext(150), PASS, SMALL);
    for at in 0..file.len() {
        for bit in [0x01, 0x80] {
            let mut bad = file.clone();
            bad[at] ^= bit;
            let err = open(&bad, PASS).expect_err(&format!("flipped byte {at}"));
            if at >= HEADER_LEN {
                assert!(matches!(err, BackupFileError::Chunk { .. }), "{at}: {err}");
            }
        }
    }
    let mut bad = file.clone();
    bad[HEADER_LEN + 3] ^= 1;
    let err = open(&bad, PASS).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "chunk 0 (at byte {HEADER_LEN}) does not authenticate: the file is damaged, truncated or its chunks are out of order"
        )
    );
    // The salt, the iterations, the tag: all caught by the header tag.
    for at in [14, 25, 40] {
        let mut bad = file.clone();
        bad[at] ^= 1;
        assert!(
            matches!(open(&bad, PASS), Err(BackupFileError::WrongPassphrase)),
            "{at}"
        );
    }
}

#[test]
fn reordered_dropped_duplicated_and_foreign_chunks_are_errors() {
    let file = seal(&plaintext(250), PASS, SMALL);
    let parts = chunks(&file);
    assert!(parts.len() >= 4);
    let assemble = |order: &[usize]| {
        let mut out = file[..HEADER_LEN].to_vec();
        for &i in order {
            out.extend_from_slice(&file[parts[i].clone()]);
        }
        out
    };
    let last = parts.len() - 1;
    for order in [
        vec![1, 0, 2, last],
        vec![0, 2, last],
        vec![0, 0, 1, 2, last],
        vec![0, 1, 2, 2, last],
        vec![0, 1, last, 2],
    ] {
        let err = open(&assemble(&order), PASS).unwrap_err();
        assert!(
            matches!(err, BackupFileError::Chunk { .. }),
            "{order:?}: {err}"
        );
    }
    // A chunk from another file with the same passphrase: another salt, another key.
    let other = seal(&plaintext(250), PASS, SMALL);
    let mut mixed = file.clone();
    mixed[parts[1].clone()].copy_from_slice(&other[parts[1].clone()]);
    assert!(matches!(
        open(&mixed, PASS),
        Err(BackupFileError::Chunk { index: 1, .. })
    ));
    // Bytes after the final chunk make it a full chunk that is not the last.
    let mut longer = file.clone();
    longer.extend_from_slice(&[0; 100]);
    assert!(open(&longer, PASS).is_err());
}

#[test]
fn foreign_files_versions_and_hostile_parameters_are_refused() {
    let file = seal(&plaintext(10), PASS, SMALL);
    let err = open(
        b"PK\x03\x04 a zip file, not a backup at all, long enough",
        PASS,
    )
    .unwrap_err();
    assert!(matches!(err, BackupFileError::Magic), "{err}");
    assert!(err.to_string().contains("not a moor backup"), "{err}");
    let err = open(b"MOORBK", PASS).unwrap_err();
    assert!(
        matches!(err, BackupFileError::ShortHeader { len: 6 }),
        "{err}"
    );

    let mut v2 = file.clone();
    v2[9] = 2;
    let err = open(&v2, PASS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "backup format version 2; this moor reads version 1"
    );
    let mut cipher = file.clone();
    cipher[11] = 9;
    assert!(matches!(
        open(&cipher, PASS),
        Err(BackupFileError::Algorithm { found: 9, .. })
    ));
    // Billions of iterations or a 4 GiB chunk would hang or exhaust a reader: refused
    // before any work.
    for (at, value) in [(12, u32::MAX), (12, 0), (16, u32::MAX), (16, 0)] {
        let mut huge = file.clone();
        huge[at..at + 4].copy_from_slice(&value.to_be_bytes());
        let err = open(&huge, PASS).unwrap_err();
        assert!(
            matches!(err, BackupFileError::Parameter { .. }),
            "{at}={value}: {err}"
        );
    }
    assert!(matches!(
        BackupWriter::new(
            Vec::new(),
            PASS,
            Params {
                iterations: 0,
                chunk_size: 64
            }
        ),
        Err(BackupFileError::Parameter { .. })
    ));
}

// ---- restore ----

struct Fixture {
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

fn record(kind: &str, namespace: &str, name: &str, value: &[u8], rev: u64) -> Entry {
    Entry::Record(Record {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
        value: value.to_vec(),
        create_revision: rev,
        mod_revision: rev,
    })
}

/// A backup of a two-controller group with a ConfigMap, a token and a controller
/// reservation, as `moor backup save` would write it.
fn fixture(secrets: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = wire::ClusterCa::create(SystemTime::now(), crate::bootstrap::CA_VALIDITY).unwrap();
    let pki = dir.path().join("old-pki");
    std::fs::create_dir_all(&pki).unwrap();
    ca.save(&pki).unwrap();
    let reservation = crate::tokens::IdentityRecord {
        role: wire::Role::Controller,
        name: "ctl-2".into(),
        raft_id: Some(2),
        token_id: "0a".into(),
        public_key: vec![4; 65],
    };
    let reservation_key = crate::tokens::identity_key(wire::Role::Controller, "ctl-2");
    let mut entries = vec![
        Entry::Header(ArchiveHeader {
            format: ARCHIVE_FORMAT,
            revision: 40,
            applied_index: 77,
            taken_at: 1,
            controller: "ctl-1".into(),
            members: vec![
                ArchiveMember {
                    id: 1,
                    name: "ctl-1".into(),
                    address: "127.0.0.1:1".into(),
                },
                ArchiveMember {
                    id: 2,
                    name: "ctl-2".into(),
                    address: "127.0.0.1:2".into(),
                },
            ],
            records: 5,
        }),
        Entry::File {
            name: CA_CERT_FILE.into(),
            data: std::fs::read(pki.join("ca.pem")).unwrap(),
        },
        Entry::File {
            name: CA_KEY_FILE.into(),
            data: std::fs::read(pki.join("ca.key")).unwrap(),
        },
    ];
    if secrets {
        entries.push(Entry::File {
            name: SECRETS_KEY_FILE.into(),
            data: vec![9; 32],
        });
    }
    entries.extend([
        record("ConfigMap", "default", "site", b"cm", 12),
        record(
            "moor.Identity",
            "agent",
            "edge-1",
            b"\x01agent reservation",
            20,
        ),
        Entry::Record(Record {
            kind: reservation_key.kind.clone(),
            namespace: reservation_key.namespace.clone(),
            name: reservation_key.name.clone(),
            value: crate::tokens::encode(&reservation_key, &reservation).unwrap(),
            create_revision: 21,
            mod_revision: 21,
        }),
        record("moor.RaftId", "", &format!("{:020}", 5), b"\x01id", 22),
        record("moor.Token", "", "0a", b"\x01token", 23),
        Entry::End {
            records: 5,
            files: if secrets { 3 } else { 2 },
        },
    ]);
    let plain: Vec<u8> = entries
        .iter()
        .flat_map(|e| archive::encode(e).unwrap())
        .collect();
    let file = dir.path().join("cluster.backup");
    std::fs::write(&file, seal(&plain, PASS, SMALL)).unwrap();
    Fixture { dir, file }
}

fn options(fixture: &Fixture, data_dir: &Path) -> RestoreOptions {
    RestoreOptions {
        file: fixture.file.clone(),
        passphrase: PASS.to_vec(),
        data_dir: data_dir.to_path_buf(),
        name: "ctl-new".into(),
        listen: "127.0.0.1:7443".parse().unwrap(),
        advertise: None,
        user_config: Some(fixture.dir.path().join("home/.moor/config")),
        now: SystemTime::now(),
    }
}

fn exported(data_dir: &Path) -> (crate::raft::ExportHead, Vec<crate::raft::ObjectKey>) {
    let storage = Storage::open(
        &crate::bootstrap::raft_dir(data_dir),
        &StorageOptions::default(),
    )
    .unwrap();
    let mut head = None;
    let mut keys = Vec::new();
    let flow = storage
        .reader()
        .export(
            |h| {
                head = Some(h);
                ControlFlow::Continue(())
            },
            |key, _| {
                keys.push(key);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert!(flow.is_continue());
    (head.unwrap(), keys)
}

#[test]
fn restore_makes_a_one_controller_group_at_the_backed_up_revision() {
    let fixture = fixture(true);
    let data = fixture.dir.path().join("data");
    let done = restore(&options(&fixture, &data)).unwrap();
    // Above every id the old group used or reserved (members 1, 2; reserved 2 and 5).
    assert_eq!(done.member.id, 6);
    assert_eq!(done.released, ["ctl-1", "ctl-2"]);
    assert!(done.secrets_key);
    assert_eq!(done.records, 4);
    let identity = crate::bootstrap::load(&data).unwrap();
    assert_eq!(identity.member, done.member);
    assert_eq!(
        std::fs::read(data.join("pki/ca.key")).unwrap(),
        std::fs::read(fixture.dir.path().join("old-pki/ca.key")).unwrap()
    );
    assert_eq!(
        std::fs::read(data.join("pki/secrets.key")).unwrap(),
        vec![9; 32]
    );
    let admin = wire::ClientConfig::load(&done.admin_config).unwrap();
    assert_eq!(admin.identity.role, wire::Role::Admin);
    assert_eq!(admin.ca, *identity.ca.cert());
    assert!(done.user_config.is_some_and(|p| p.is_file()));
    assert!(!data.join(".restore.tmp").exists());

    let (head, keys) = exported(&data);
    assert_eq!(head.revision, 40);
    assert_eq!(head.members.len(), 1);
    assert_eq!(head.members[0].0, 6);
    let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        names,
        [
            "ConfigMap/default/site",
            "moor.Identity/agent/edge-1",
            "moor.RaftId//00000000000000000005",
            "moor.Token//0a",
        ]
    );

    // A second restore into the same directory is refused and changes nothing.
    let before = std::fs::read(data.join("controller/member.json")).unwrap();
    let err = restore(&options(&fixture, &data)).unwrap_err();
    assert!(matches!(err, RestoreError::Occupied { .. }), "{err}");
    assert!(
        err.to_string().contains("already holds a controller"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(data.join("controller/member.json")).unwrap(),
        before
    );
}

#[test]
fn a_failed_restore_leaves_the_data_directory_as_it_was() {
    let fixture = fixture(false);
    let data = fixture.dir.path().join("data");
    let mut wrong = options(&fixture, &data);
    wrong.passphrase = b"not it".to_vec();
    let err = restore(&wrong).unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&fixture.file.display().to_string()),
        "{err}"
    );
    assert!(!data.exists());

    // Damaged content, into an existing empty directory: left empty.
    std::fs::create_dir(&data).unwrap();
    let bytes = std::fs::read(&fixture.file).unwrap();
    std::fs::write(&fixture.file, &bytes[..bytes.len() - 20]).unwrap();
    let err = restore(&options(&fixture, &data)).unwrap_err();
    assert!(matches!(err, RestoreError::File { .. }), "{err}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);

    let mut bad_name = options(&fixture, &data);
    bad_name.name = "Not_A_Name".into();
    assert!(matches!(restore(&bad_name), Err(RestoreError::Name(_))));
    let mut unspecified = options(&fixture, &data);
    unspecified.listen = "0.0.0.0:7443".parse().unwrap();
    assert!(matches!(
        restore(&unspecified),
        Err(RestoreError::Unspecified { .. })
    ));
    let mut missing = options(&fixture, &data);
    missing.file = fixture.dir.path().join("absent");
    let err = restore(&missing).unwrap_err();
    assert!(err.to_string().starts_with("open "), "{err}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}
