//! Archive tests: round trips, skopeo and umoci interoperability, `docker save` tars,
//! hostile archives and preloading.

mod docker;
mod hostile;
mod interop;
mod preload;
mod roundtrip;

use std::io::Write;
use std::path::Path;

use crate::image::digest::Digest;
use crate::image::reference::Reference;
use crate::image::store::Store;
use crate::image::store::test_support::{TestImage, layer_tar, put_image};

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

/// A two-layer gzip image for the host's platform, tagged `reference` in `store`.
fn tagged_image(store: &Store, reference: &str) -> TestImage {
    let tars = vec![
        layer_tar(&[
            ("etc/os-release", b"ID=moor-test\n"),
            ("bin/hello", b"hello"),
        ]),
        layer_tar(&[("app/config", b"key=value\n")]),
    ];
    let image = put_image(
        store,
        &crate::image::platform::Platform::host(),
        &tars,
        true,
    );
    store.tag(&r(reference), &image.manifest).unwrap();
    image
}

/// One entry of a hand-made tar; names are written as given, `..` and all.
enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    /// A header of this type byte with this (possibly large) data.
    Typed(u8, &'a str, &'a [u8]),
}

fn raw_header(kind: u8, name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    {
        let bytes = h.as_mut_bytes();
        bytes[..100].fill(0);
        bytes[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(name, data) => b
                .append(&raw_header(b'0', name, data.len() as u64), *data)
                .unwrap(),
            E::Dir(name) => b
                .append(&raw_header(b'5', name, 0), std::io::empty())
                .unwrap(),
            E::Symlink(name, target) => {
                let mut h = raw_header(b'2', name, 0);
                h.as_mut_bytes()[157..157 + target.len()].copy_from_slice(target.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap()
            }
            E::Typed(kind, name, data) => b
                .append(&raw_header(*kind, name, data.len() as u64), *data)
                .unwrap(),
        }
    }
    b.into_inner().unwrap()
}

/// An OCI layout tar holding `blobs` and `index`.
fn layout_tar(blobs: &[(Digest, Vec<u8>)], index: &[u8]) -> Vec<u8> {
    let names: Vec<String> = blobs
        .iter()
        .map(|(d, _)| format!("blobs/sha256/{}", d.hex()))
        .collect();
    let mut entries = vec![
        E::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        E::Dir("blobs/"),
        E::Dir("blobs/sha256/"),
    ];
    for (name, (_, data)) in names.iter().zip(blobs) {
        entries.push(E::File(name, data));
    }
    entries.push(E::File("index.json", index));
    tar_of(&entries)
}

/// Every blob of a test image, manifest first.
fn blobs_of(image: &TestImage) -> Vec<(Digest, Vec<u8>)> {
    let mut v = vec![
        (image.manifest.clone(), image.manifest_bytes.clone()),
        (image.config.clone(), image.config_bytes.clone()),
    ];
    v.extend(image.layers.iter().cloned());
    v
}

fn write(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn zstd_of(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}
