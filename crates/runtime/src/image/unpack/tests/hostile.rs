//! Layers built to escape, exhaust or confuse: each must fail with an error naming the
//! entry, write nothing outside `dest`, and not panic.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::image::digest::Digest;

fn limits() -> UnpackLimits {
    UnpackLimits::default()
}

#[test]
fn dot_dot_names_are_refused() {
    let s = Scratch::new();
    for name in [&b"../x"[..], b"a/../../x", b"./../sentinel/x"] {
        let tar = RawTar::new().file(b"ok", b"1").file(name, b"evil").end();
        let err = assert_names(
            s.unpack(&tar, &limits()),
            std::str::from_utf8(name).expect("utf8"),
        );
        assert!(matches!(err, UnpackError::UnsafeName { .. }), "{err}");
        s.assert_contained(0);
        s.reset();
    }
}

#[test]
fn absolute_names_are_refused() {
    let s = Scratch::new();
    let name = format!("/tmp/moor-unpack-absolute-{}", std::process::id());
    let tar = RawTar::new().file(name.as_bytes(), b"evil").end();
    let err = assert_names(s.unpack(&tar, &limits()), &name);
    assert!(matches!(err, UnpackError::UnsafeName { .. }));
    assert!(!Path::new(&name).exists());
    s.assert_contained(0);
}

#[test]
fn empty_nul_and_oversized_names_are_refused() {
    let s = Scratch::new();
    let tar = RawTar::new().file(b"", b"x").end();
    assert!(matches!(
        s.unpack(&tar, &limits()),
        Err(UnpackError::UnsafeName { .. })
    ));
    let tar = RawTar::new()
        .pax(&[(b"path", b"a\0b")])
        .file(b"placeholder", b"")
        .end();
    assert!(matches!(
        s.unpack(&tar, &limits()),
        Err(UnpackError::UnsafeName { .. })
    ));
    let component = "c".repeat(256);
    let tar = RawTar::new()
        .pax(&[(b"path", component.as_bytes())])
        .file(b"x", b"")
        .end();
    assert_names(s.unpack(&tar, &limits()), &component);
    s.assert_contained(0);
}

#[test]
fn long_gnu_and_pax_names_over_the_limit_are_refused() {
    let s = Scratch::new();
    let long = "d/".repeat(2100) + "file";
    // Small limit: a name just over it.
    let small = UnpackLimits {
        max_path: 300,
        ..limits()
    };
    let over = "n/".repeat(160);
    let tar = RawTar::new()
        .gnu_long(b'L', over.as_bytes())
        .file(b"x", b"")
        .end();
    assert_names(s.unpack(&tar, &small), &over[..200]);
    let tar = RawTar::new()
        .pax(&[(b"path", over.as_bytes())])
        .file(b"x", b"")
        .end();
    assert_names(s.unpack(&tar, &small), &over[..200]);
    // Default limit, names over 4096 bytes (GNU long name data is not even read whole).
    let tar = RawTar::new()
        .gnu_long(b'L', long.as_bytes())
        .file(b"x", b"")
        .end();
    assert_names(s.unpack(&tar, &limits()), "d/d/d/d/");
    let tar = RawTar::new()
        .pax(&[(b"path", long.as_bytes())])
        .file(b"x", b"")
        .end();
    assert_names(s.unpack(&tar, &limits()), "d/d/d/d/");
    let tar = RawTar::new()
        .gnu_long(b'K', long.as_bytes())
        .hardlink(b"h", b"x")
        .end();
    assert!(s.unpack(&tar, &limits()).is_err());
    s.assert_contained(0);
}

#[test]
fn huge_extension_headers_are_refused_before_they_are_read() {
    let s = Scratch::new();
    // A PAX header claiming 8 GiB, followed by nothing: refused at its size.
    let mut h = Hdr::new(b"PaxHeader/x", b'x');
    h.size = 8 << 30;
    let tar = RawTar::new().block(&h.block()).end();
    let err = s.unpack(&tar, &limits()).expect_err("accepted");
    assert!(matches!(err, UnpackError::Header { .. }), "{err}");
}

#[test]
fn entries_through_a_symlink_to_etc_are_refused() {
    let s = Scratch::new();
    let tar = RawTar::new()
        .symlink(b"evil", b"/etc")
        .file(b"evil/moor-unpack-escape", b"owned")
        .end();
    let err = assert_names(s.unpack(&tar, &limits()), "evil/moor-unpack-escape");
    assert!(matches!(err, UnpackError::BelowSymlink { .. }), "{err}");
    assert!(!Path::new("/etc/moor-unpack-escape").exists());
    s.assert_contained(0);
}

#[test]
fn entries_through_a_relative_symlink_out_are_refused() {
    let s = Scratch::new();
    for (link, entry) in [
        (&b"../.."[..], &b"up/sentinel/x"[..]),
        (b"..", b"up/sentinel/x"),
        (b"../sentinel", b"up/x"),
        (b"a/b/../../..", b"up/sentinel/x"),
    ] {
        let tar = RawTar::new()
            .dir(b"a")
            .dir(b"a/b")
            .symlink(b"up", link)
            .file(entry, b"x")
            .end();
        let err = assert_names(
            s.unpack(&tar, &limits()),
            std::str::from_utf8(entry).expect("utf8"),
        );
        assert!(matches!(err, UnpackError::BelowSymlink { .. }), "{err}");
        s.assert_contained(0);
        s.reset();
    }
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_walked_through() {
    // The walk cache must forget "d" when the symlink replaces it.
    let s = Scratch::new();
    let tar = RawTar::new()
        .dir(b"d")
        .file(b"d/a", b"1")
        .symlink(b"d", b"../sentinel")
        .file(b"d/x", b"evil")
        .end();
    let err = assert_names(s.unpack(&tar, &limits()), "d/x");
    assert!(matches!(err, UnpackError::BelowSymlink { .. }), "{err}");
    s.assert_contained(0);
}

#[test]
fn hardlinks_out_of_the_layer_or_to_non_files_are_refused() {
    let s = Scratch::new();
    std::fs::write(s.sentinel.join("secret"), b"s").expect("write");
    let cases: [(&[u8], &[u8]); 8] = [
        (b"h1", b"../../etc/passwd"),
        (b"h2", b"/etc/passwd"),
        (b"h3", b"../sentinel/secret"),
        (b"h4", b"sym"),
        (b"h5", b"dir"),
        (b"h6", b"missing"),
        (b"h7", b"sym/secret"),
        (b"h8", b""),
    ];
    for (name, target) in cases {
        let tar = RawTar::new()
            .symlink(b"sym", b"../sentinel")
            .dir(b"dir")
            .hardlink(name, target)
            .end();
        let err = assert_names(
            s.unpack(&tar, &limits()),
            std::str::from_utf8(name).expect("utf8"),
        );
        assert!(
            matches!(
                err,
                UnpackError::Hardlink { .. } | UnpackError::UnsafeName { .. }
            ),
            "{err}"
        );
        assert_eq!(lstat(&s.sentinel.join("secret")).nlink(), 1);
        s.assert_contained(1);
        s.reset();
    }
}

#[test]
fn metadata_below_a_symlinked_parent_is_refused() {
    require!(is_root(), "root (chown and trusted xattrs)");
    let s = Scratch::new();
    let target = s.sentinel.join("target");
    std::fs::write(&target, b"t").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let before = lstat(&target);
    let mut h = Hdr::new(b"lnk/target", b'0');
    (h.mode, h.uid, h.gid, h.mtime) = (0o4777, 1234, 5678, 1);
    let mut d = Hdr::new(b"lnk/", b'5');
    (d.mode, d.uid, d.mtime) = (0o777, 1234, 1);
    let check_untouched = || {
        let after = lstat(&target);
        assert_eq!(
            (after.mode(), after.uid(), after.gid(), after.mtime()),
            (before.mode(), before.uid(), before.gid(), before.mtime())
        );
        assert_eq!(std::fs::read(&target).expect("read"), b"t");
        assert!(lgetxattr(&target, "trusted.moor").is_none());
        let sentinel = lstat(&s.sentinel);
        assert_ne!(sentinel.mode() & 0o777, 0o777);
        assert_ne!(sentinel.uid(), 1234);
        s.assert_contained(1);
    };
    // A file entry (mode, owner, times, xattr) below the symlink: refused.
    let tar = RawTar::new()
        .symlink(b"lnk", s.sentinel.as_os_str().as_encoded_bytes())
        .pax(&[(b"SCHILY.xattr.trusted.moor", b"1")])
        .entry(&h, b"evil")
        .end();
    let err = assert_names(s.unpack(&tar, &limits()), "lnk/target");
    assert!(matches!(err, UnpackError::BelowSymlink { .. }), "{err}");
    check_untouched();
    s.reset();
    // A directory entry naming the symlink replaces the link with a real directory: its
    // metadata lands there, not on the link's target.
    let tar = RawTar::new()
        .symlink(b"lnk", b"../sentinel")
        .entry(&d, b"")
        .entry(&h, b"evil")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    let lnk = lstat(&s.path("lnk"));
    assert!(lnk.is_dir());
    assert_eq!((lnk.mode() & 0o7777, lnk.uid()), (0o777, 1234));
    assert_eq!(lstat(&s.path("lnk/target")).mode() & 0o7777, 0o4777);
    check_untouched();
}

#[test]
fn symlink_metadata_applies_to_the_link_not_its_target() {
    require!(is_root(), "root (lchown and trusted xattrs on symlinks)");
    let s = Scratch::new();
    let outside = s.sentinel.join("target");
    std::fs::write(&outside, b"t").expect("write");
    let before = lstat(&outside);
    let mut h1 = Hdr::new(b"out", b'2');
    h1.link = outside.as_os_str().as_encoded_bytes().to_vec();
    (h1.uid, h1.gid, h1.mtime, h1.mode) = (1234, 5678, 1000, 0o600);
    let mut h2 = Hdr::new(b"in", b'2');
    h2.link = b"file".to_vec();
    (h2.uid, h2.gid, h2.mtime, h2.mode) = (4321, 8765, 2000, 0o600);
    let tar = RawTar::new()
        .file(b"file", b"f")
        .pax(&[(b"SCHILY.xattr.trusted.moor", b"link")])
        .entry(&h1, b"")
        .entry(&h2, b"")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    let link = lstat(&s.path("out"));
    assert!(link.file_type().is_symlink());
    assert_eq!((link.uid(), link.gid(), link.mtime()), (1234, 5678, 1000));
    assert_eq!(
        lgetxattr(&s.path("out"), "trusted.moor").as_deref(),
        Some(&b"link"[..])
    );
    let after = lstat(&outside);
    assert_eq!(
        (after.mode(), after.uid(), after.gid(), after.mtime()),
        (before.mode(), before.uid(), before.gid(), before.mtime())
    );
    assert!(lgetxattr(&outside, "trusted.moor").is_none());
    let file = lstat(&s.path("file"));
    assert_eq!(
        (file.mode() & 0o7777, file.uid(), file.mtime()),
        (0o644, 0, 1_600_000_000)
    );
    assert_eq!(
        std::fs::read_link(s.path("in")).expect("readlink"),
        Path::new("file")
    );
    s.assert_contained(1);
}

#[test]
fn whiteouts_below_a_symlinked_parent_are_refused() {
    let s = Scratch::new();
    std::fs::create_dir(s.sentinel.join("sub")).expect("mkdir");
    for entry in [&b"lnk/.wh.sub"[..], b"lnk/.wh..wh..opq"] {
        let tar = RawTar::new()
            .symlink(b"lnk", b"../sentinel")
            .file(entry, b"")
            .end();
        let err = assert_names(
            s.unpack(&tar, &limits()),
            std::str::from_utf8(entry).expect("utf8"),
        );
        assert!(matches!(err, UnpackError::BelowSymlink { .. }), "{err}");
        assert!(lstat(&s.sentinel.join("sub")).is_dir());
        assert!(lgetxattr(&s.sentinel, "trusted.overlay.opaque").is_none());
        s.assert_contained(1);
        s.reset();
    }
}

#[test]
fn whiteouts_of_the_root_or_of_nothing_are_refused() {
    let s = Scratch::new();
    for entry in [&b".wh."[..], b"./.wh..", b".wh...", b"d/.wh.."] {
        let tar = RawTar::new().dir(b"d").file(entry, b"").end();
        let err = s.unpack(&tar, &limits()).expect_err("accepted");
        assert!(
            matches!(
                err,
                UnpackError::Whiteout { .. } | UnpackError::UnsafeName { .. }
            ),
            "{err}"
        );
        s.assert_contained(0);
        s.reset();
    }
    let tar = RawTar::new().file(b"./", b"").end();
    assert!(matches!(
        s.unpack(&tar, &limits()),
        Err(UnpackError::UnsafeName { .. })
    ));
}

#[test]
fn a_gzip_bomb_stops_at_max_bytes() {
    let s = Scratch::new();
    // Many files, each under the limit: only the stream's total is over it.
    let zeros = vec![0u8; 256 << 10];
    let mut tar = RawTar::new();
    for i in 0..64 {
        tar.file(format!("f{i}").as_bytes(), &zeros);
    }
    let gz = gzip(&tar.end());
    assert!(gz.len() < 100_000, "the bomb is small: {}", gz.len());
    let small = UnpackLimits {
        max_bytes: 1 << 20,
        ..limits()
    };
    let err =
        unpack_layer(&gz[..], Compression::Gzip, &s.dest, None, &small).expect_err("accepted");
    assert!(
        matches!(err, UnpackError::TooManyBytes { limit } if limit == 1 << 20),
        "{err}"
    );
    s.assert_contained(0);
}

#[test]
fn a_sparse_file_with_a_huge_apparent_size_is_refused() {
    let s = Scratch::new();
    let mut h = Hdr::new(b"sparse", b'S');
    h.gnu = true;
    h.size = 512;
    let mut b = h.block();
    let real: u64 = 1 << 40;
    octal(&mut b[386..398], real - 512);
    octal(&mut b[398..410], 512);
    octal(&mut b[483..495], real);
    checksum(&mut b);
    let tar = RawTar::new().block(&b).data(&[7u8; 512]).end();
    let err = assert_names(s.unpack(&tar, &limits()), "sparse");
    assert!(matches!(err, UnpackError::SparseTooLarge { .. }), "{err}");
    s.assert_contained(0);
}

#[test]
fn truncated_streams_are_refused() {
    let s = Scratch::new();
    let tar = RawTar::new()
        .file(b"a", b"1")
        .file(b"big", &[1u8; 5000])
        .end();
    // Inside the data of "big"; inside its header (reported after the last entry).
    for (cut, entry) in [(512 * 3 + 100, "big"), (512 * 2 + 10, "a")] {
        let err = assert_names(s.unpack(&tar[..cut], &limits()), entry);
        assert!(matches!(err, UnpackError::Truncated { .. }), "{err}");
        s.assert_contained(0);
        s.reset();
    }
    // A gzip stream cut short.
    let gz = gzip(&tar);
    let err = unpack_layer(
        &gz[..gz.len() / 2],
        Compression::Gzip,
        &s.dest,
        None,
        &limits(),
    )
    .expect_err("accepted");
    assert!(
        matches!(
            err,
            UnpackError::Read { .. } | UnpackError::Truncated { .. }
        ),
        "{err}"
    );
    s.reset();
    // Cut at a header boundary: a valid but different stream, caught by its digest.
    let expected = Digest::sha256(&tar);
    let err = unpack_layer(
        &tar[..1024],
        Compression::None,
        &s.dest,
        Some(&expected),
        &limits(),
    )
    .expect_err("accepted");
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
}

/// Zeros forever.
struct Endless;

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(0);
        Ok(buf.len())
    }
}

#[test]
fn an_endless_stream_stops_at_max_bytes() {
    let s = Scratch::new();
    let small = UnpackLimits {
        max_bytes: 3 << 20,
        ..limits()
    };
    let err =
        unpack_layer(Endless, Compression::None, &s.dest, None, &small).expect_err("accepted");
    assert!(matches!(err, UnpackError::TooManyBytes { .. }), "{err}");
    // A valid archive followed by endless padding.
    let tar = RawTar::new().file(b"a", b"1").end();
    let err = unpack_layer(
        tar.as_slice().chain(Endless),
        Compression::None,
        &s.dest,
        None,
        &small,
    )
    .expect_err("accepted");
    assert!(matches!(err, UnpackError::TooManyBytes { .. }), "{err}");
    s.assert_contained(0);
}

#[test]
fn a_wrong_diff_id_is_refused_after_the_whole_stream() {
    let s = Scratch::new();
    let tar = RawTar::new().file(b"a", b"1").end();
    let wrong = Digest::sha256(b"something else");
    let err = unpack_layer(
        &tar[..],
        Compression::None,
        &s.dest,
        Some(&wrong),
        &limits(),
    )
    .expect_err("accepted");
    match err {
        UnpackError::DiffIdMismatch { expected, actual } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, Digest::sha256(&tar));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn too_many_entries_are_refused() {
    let s = Scratch::new();
    let few = UnpackLimits {
        max_entries: 3,
        ..limits()
    };
    let tar = RawTar::new()
        .file(b"1", b"")
        .file(b"2", b"")
        .file(b"3", b"")
        .file(b"4", b"")
        .end();
    let err = assert_names(s.unpack(&tar, &few), "4");
    assert!(matches!(err, UnpackError::TooManyEntries { .. }), "{err}");
}

#[test]
fn malformed_headers_are_refused() {
    let s = Scratch::new();
    // Bad checksum.
    let mut b = Hdr::new(b"bad", b'0').block();
    b[0] = b'B';
    let tar = RawTar::new().block(&b).end();
    assert_names(s.unpack(&tar, &limits()), "Bad");
    s.reset();
    // Unknown type (GNU volume label).
    let tar = RawTar::new().entry(&Hdr::new(b"vol", b'V'), b"").end();
    let err = assert_names(s.unpack(&tar, &limits()), "vol");
    assert!(
        matches!(err, UnpackError::UnsupportedType { typeflag: 'V', .. }),
        "{err}"
    );
    s.reset();
    // An entry hidden after a single zero block.
    let mut tar = RawTar::new().file(b"a", b"1").out.clone();
    tar.extend_from_slice(&[0u8; 512]);
    tar.extend_from_slice(&RawTar::new().file(b"hidden", b"2").end());
    assert_names(s.unpack(&tar, &limits()), "hidden");
    s.reset();
    // A PAX header with no entry after it.
    let tar = RawTar::new().pax(&[(b"path", b"orphan")]).end();
    assert_names(s.unpack(&tar, &limits()), "orphan");
    s.reset();
    // PAX sparse: an unknown version; a 1.0 map longer than the entry; regions that
    // overlap; an apparent size over the limit.
    let tar = RawTar::new()
        .pax(&[(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0")])
        .file(b"GNUSparseFile.0/f", b"")
        .end();
    assert_names(s.unpack(&tar, &limits()), "GNUSparseFile.0/f");
    let v1 = [
        (&b"GNU.sparse.major"[..], &b"1"[..]),
        (b"GNU.sparse.minor", b"0"),
        (b"GNU.sparse.name", b"real"),
        (b"GNU.sparse.realsize", b"100"),
    ];
    for data in [&b"1\n0\n"[..], b"99999999\n", b"1\n0\nx\n"] {
        let tar = RawTar::new()
            .pax(&v1)
            .file(b"GNUSparseFile.0/real", data)
            .end();
        assert_names(s.unpack(&tar, &limits()), "real");
    }
    let tar = RawTar::new()
        .pax(&[
            (b"GNU.sparse.map", b"0,10,5,10"),
            (b"GNU.sparse.size", b"100"),
        ])
        .file(b"overlap", &[1u8; 20])
        .end();
    assert_names(s.unpack(&tar, &limits()), "overlap");
    let tar = RawTar::new()
        .pax(&[
            (b"GNU.sparse.map", b"0,1"),
            (b"GNU.sparse.size", b"1099511627776"),
        ])
        .file(b"huge", &[1u8])
        .end();
    let err = assert_names(s.unpack(&tar, &limits()), "huge");
    assert!(matches!(err, UnpackError::SparseTooLarge { .. }), "{err}");
    s.assert_contained(0);
}

#[test]
fn a_destination_that_is_not_empty_is_refused() {
    let s = Scratch::new();
    std::fs::write(s.path("already"), b"x").expect("write");
    let tar = RawTar::new().file(b"a", b"1").end();
    assert!(matches!(
        s.unpack(&tar, &limits()),
        Err(UnpackError::DestNotEmpty { .. })
    ));
}
