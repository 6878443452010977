//! Hostile archives: every one is refused with an error naming the problem, and the
//! store is left with nothing tagged.

use super::{E, blobs_of, layout_tar, new_store, tagged_image, tar_of, write};
use crate::image::archive::{ArchiveError, import};
use crate::image::digest::Digest;
use crate::image::manifest::{MAX_MANIFEST_BYTES, OCI_MANIFEST};
use crate::image::platform::Platform;
use crate::image::store::test_support::{gzip, index_json};
use crate::image::store::{Store, StoreError};

/// Imports `bytes` as an archive into a fresh store; returns the error and the store.
fn refused(bytes: &[u8]) -> (ArchiveError, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.tar");
    write(&path, bytes);
    let store = Store::open(&dir.path().join("data")).unwrap();
    let e = import(&store, &path, &Platform::host()).unwrap_err();
    assert!(
        store.references().unwrap().is_empty(),
        "tagged something after {e}"
    );
    (e, store, dir)
}

fn bad_entry(e: &ArchiveError, expected_entry: &str) {
    match e {
        ArchiveError::BadEntry { entry, .. } => assert_eq!(entry, expected_entry, "{e}"),
        other => panic!("expected a bad entry {expected_entry:?}, got {other}"),
    }
}

/// A good image's blobs and index, for variations.
fn good() -> (Vec<(Digest, Vec<u8>)>, Vec<u8>) {
    let (_d, store) = new_store();
    let image = tagged_image(&store, "app:1");
    let host = Platform::host().to_string();
    let index = index_json(&[(&image.manifest, image.manifest_size, OCI_MANIFEST, &host)]);
    (blobs_of(&image), index)
}

#[test]
fn traversal_and_absolute_names_are_refused() {
    let (e, store, _d) = refused(&tar_of(&[E::File("../evil", b"x")]));
    bad_entry(&e, "../evil");
    assert!(e.to_string().contains(".."), "{e}");
    drop(store);
    let (e, ..) = refused(&tar_of(&[E::File("blobs/../../evil", b"x")]));
    bad_entry(&e, "blobs/../../evil");
    let (e, ..) = refused(&tar_of(&[E::File("/etc/passwd", b"x")]));
    bad_entry(&e, "/etc/passwd");
}

#[test]
fn links_out_of_the_archive_and_odd_entry_types_are_refused() {
    let (e, ..) = refused(&tar_of(&[E::Symlink(
        "blobs/sha256/x",
        "../../../etc/shadow",
    )]));
    bad_entry(&e, "blobs/sha256/x");
    let (e, ..) = refused(&tar_of(&[E::Symlink("index.json", "/etc/passwd")]));
    bad_entry(&e, "index.json");
    let (e, ..) = refused(&tar_of(&[E::Typed(b'3', "dev/tty", b"")]));
    bad_entry(&e, "dev/tty");
    let (e, ..) = refused(&tar_of(&[E::Typed(b'6', "fifo", b"")]));
    bad_entry(&e, "fifo");
}

#[test]
fn oversized_names_headers_and_json_are_refused() {
    let long = vec![b'a'; 5000];
    let (e, ..) = refused(&tar_of(&[
        E::Typed(b'L', "././@LongLink", &long),
        E::File("x", b""),
    ]));
    assert!(matches!(e, ArchiveError::BadEntry { .. }), "{e}");
    let pax = vec![b'\n'; 70 << 10];
    let (e, ..) = refused(&tar_of(&[E::Typed(b'x', "pax", &pax), E::File("x", b"")]));
    assert!(matches!(e, ArchiveError::BadEntry { .. }), "{e}");
    let size = b"20 size=99999999999\n";
    let (e, ..) = refused(&tar_of(&[E::Typed(b'x', "pax", size), E::File("x", b"")]));
    assert!(matches!(e, ArchiveError::BadEntry { .. }), "{e}");
    let huge = vec![b' '; MAX_MANIFEST_BYTES as usize + 1];
    let (e, ..) = refused(&tar_of(&[E::File("index.json", &huge)]));
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{e}");
    // A small gzip that inflates to a huge index.json is stopped at the same limit.
    let (e, ..) = refused(&gzip(&tar_of(&[E::File("index.json", &huge)])));
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{e}");
}

#[test]
fn a_blob_whose_content_is_not_its_name_is_refused() {
    let (mut blobs, index) = good();
    blobs[1].1.push(b' ');
    let (e, store, _d) = refused(&layout_tar(&blobs, &index));
    match &e {
        ArchiveError::Entry { entry, source, .. } => {
            assert_eq!(entry, &format!("blobs/sha256/{}", blobs[1].0.hex()));
            assert!(matches!(
                **source,
                StoreError::TooLong { .. } | StoreError::DigestMismatch { .. }
            ));
        }
        other => panic!("{other}"),
    }
    assert!(!store.has_blob(&blobs[1].0));
    let (e, ..) = refused(&tar_of(&[E::File("blobs/sha256/../../x", b"")]));
    assert!(matches!(e, ArchiveError::BadEntry { .. }), "{e}");
    let (e, ..) = refused(&tar_of(&[E::File("blobs/sha256/notahash", b"")]));
    assert!(matches!(e, ArchiveError::BadEntry { .. }), "{e}");
}

#[test]
fn missing_blobs_and_lying_sizes_are_refused() {
    let (blobs, index) = good();
    // No layers in the archive.
    let (e, ..) = refused(&layout_tar(&blobs[..2], &index));
    assert!(matches!(e, ArchiveError::MissingBlob { .. }), "{e}");
    // The index lies about the manifest's size.
    let host = Platform::host().to_string();
    let bad_index = index_json(&[(
        &blobs[0].0,
        blobs[0].1.len() as u64 + 1,
        OCI_MANIFEST,
        &host,
    )]);
    let (e, ..) = refused(&layout_tar(&blobs, &bad_index));
    assert!(matches!(e, ArchiveError::SizeMismatch { .. }), "{e}");
    // The index has a hostile digest.
    let text = String::from_utf8(index.clone())
        .unwrap()
        .replace(&blobs[0].0.to_string(), "sha256:../../x");
    let (e, ..) = refused(&layout_tar(&blobs, text.as_bytes()));
    assert!(matches!(e, ArchiveError::Manifest { .. }), "{e}");
}

#[test]
fn layouts_with_the_wrong_version_or_no_format_are_refused() {
    let (blobs, index) = good();
    let mut entries = vec![E::File("oci-layout", br#"{"imageLayoutVersion":"2.0.0"}"#)];
    let names: Vec<String> = blobs
        .iter()
        .map(|(d, _)| format!("blobs/sha256/{}", d.hex()))
        .collect();
    for (n, (_, b)) in names.iter().zip(&blobs) {
        entries.push(E::File(n, b));
    }
    entries.push(E::File("index.json", &index));
    let (e, ..) = refused(&tar_of(&entries));
    assert!(matches!(e, ArchiveError::LayoutVersion { .. }), "{e}");
    let (e, ..) = refused(&tar_of(&[E::File("readme", b"hello")]));
    assert!(matches!(e, ArchiveError::UnknownFormat { .. }), "{e}");
    let (e, ..) = refused(b"this is not a tar file at all, just some text that goes on and on");
    assert!(
        matches!(
            e,
            ArchiveError::Read { .. } | ArchiveError::UnknownFormat { .. }
        ),
        "{e}"
    );
}

#[test]
fn a_full_name_annotation_that_is_not_a_reference_is_refused() {
    let (blobs, index) = good();
    let mut v: serde_json::Value = serde_json::from_slice(&index).unwrap();
    v["manifests"][0]["annotations"] = serde_json::json!({"io.containerd.image.name": "../../etc"});
    let (e, ..) = refused(&layout_tar(&blobs, &serde_json::to_vec(&v).unwrap()));
    assert!(matches!(e, ArchiveError::BadReference { .. }), "{e}");
}

#[test]
fn a_layout_directory_never_follows_symlinked_blobs() {
    let (blobs, index) = good();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    write(
        &layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    write(&layout.join("index.json"), &index);
    for (d, b) in &blobs[1..] {
        write(&layout.join("blobs/sha256").join(d.hex()), b);
    }
    let outside = dir.path().join("outside");
    write(&outside, &blobs[0].1);
    std::os::unix::fs::symlink(&outside, layout.join("blobs/sha256").join(blobs[0].0.hex()))
        .unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let e = import(&store, &layout, &Platform::host()).unwrap_err();
    assert!(matches!(e, ArchiveError::BadEntry { .. }), "{e}");
    assert!(store.references().unwrap().is_empty());

    // With the real file in place it imports.
    std::fs::remove_file(layout.join("blobs/sha256").join(blobs[0].0.hex())).unwrap();
    write(
        &layout.join("blobs/sha256").join(blobs[0].0.hex()),
        &blobs[0].1,
    );
    let imported = import(&store, &layout, &Platform::host()).unwrap();
    assert_eq!(imported[0].digest, blobs[0].0);
}
