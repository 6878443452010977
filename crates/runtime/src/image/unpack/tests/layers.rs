//! Ordinary layers: compressions, digests, metadata, links, whiteouts, replacements.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::*;
use crate::image::digest::Digest;

fn limits() -> UnpackLimits {
    UnpackLimits::default()
}

/// A small layer made with `tar::Builder`: directories, files, a long name, links.
fn builder_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_mtime(1_500_000_000);
        h.set_size(0);
        (h, path.to_string())
    };
    let (mut h, p) = dir("etc/", 0o755);
    b.append_data(&mut h, p, &b""[..]).expect("dir");
    let (mut h, p) = dir("usr/lib/", 0o755);
    b.append_data(&mut h, p, &b""[..]).expect("dir");
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_500_000_001);
        b.append_data(&mut h, path, data).expect("file");
    };
    file(&mut b, "etc/hostname", b"moor\n", 0o644);
    let long = format!("usr/lib/{}/{}", "l".repeat(200), "m".repeat(150));
    file(&mut b, &long, b"long name", 0o600);
    file(&mut b, "usr/lib/big", &vec![0xa5; 300_000], 0o755);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "usr/lib/link", "big")
        .expect("symlink");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "etc/hostname.hard", "etc/hostname")
        .expect("hardlink");
    b.into_inner().expect("finish")
}

fn check_builder_layer(dest: &Path) {
    assert_eq!(
        std::fs::read(dest.join("etc/hostname")).expect("read"),
        b"moor\n"
    );
    let long = format!("usr/lib/{}/{}", "l".repeat(200), "m".repeat(150));
    assert_eq!(std::fs::read(dest.join(long)).expect("read"), b"long name");
    assert_eq!(
        std::fs::read(dest.join("usr/lib/big")).expect("read").len(),
        300_000
    );
    assert_eq!(
        std::fs::read_link(dest.join("usr/lib/link")).expect("readlink"),
        Path::new("big")
    );
    let (a, b) = (
        lstat(&dest.join("etc/hostname")),
        lstat(&dest.join("etc/hostname.hard")),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    assert_eq!(lstat(&dest.join("etc")).mtime(), 1_500_000_000);
    assert_eq!(lstat(&dest.join("usr/lib/big")).mode() & 0o7777, 0o755);
}

#[test]
fn plain_gzip_and_zstd_layers_unpack_alike_with_the_same_diff_id() {
    let tar = builder_layer();
    let diff_id = Digest::sha256(&tar);
    for (compression, blob) in [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd(&tar)),
    ] {
        assert_eq!(Compression::sniff(&blob), compression);
        let s = Scratch::new();
        let got = unpack_layer(&blob[..], compression, &s.dest, Some(&diff_id), &limits())
            .unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(got.diff_id, diff_id);
        assert_eq!(got.size, tar.len() as u64);
        assert_eq!(got.entries, 7);
        check_builder_layer(&s.dest);
        s.assert_contained(0);
    }
}

#[test]
fn the_diff_id_covers_padding_after_the_end_of_archive() {
    let mut tar = RawTar::new().file(b"a", b"hello").end();
    tar.extend_from_slice(&[0u8; 9 * 1024]);
    // sha256 of this exact stream, computed outside moor (sha256sum).
    let known: Digest = "sha256:51f6479e483c2e834d0e7a04d8cb5372362eef65c6fd8755fb42f5c01e8dbb1f"
        .parse()
        .expect("digest");
    let s = Scratch::new();
    let got = unpack_layer(
        &tar[..],
        Compression::None,
        &s.dest,
        Some(&known),
        &limits(),
    )
    .expect("unpack");
    assert_eq!(got.size, 11 * 1024);
    assert_eq!(got.diff_id, known);
    assert_eq!(std::fs::read(s.path("a")).expect("read"), b"hello");
}

#[test]
fn media_types_name_their_compression() {
    for (media_type, expected) in [
        (
            "application/vnd.oci.image.layer.v1.tar",
            Some(Compression::None),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Some(Compression::Gzip),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Some(Compression::Zstd),
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Some(Compression::Gzip),
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Some(Compression::Gzip),
        ),
        (
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Some(Compression::Gzip),
        ),
        ("application/vnd.oci.image.config.v1+json", None),
        ("application/octet-stream", None),
    ] {
        assert_eq!(
            Compression::from_media_type(media_type),
            expected,
            "{media_type}"
        );
    }
    assert_eq!(Compression::sniff(b"ustar"), Compression::None);
    assert_eq!(Compression::sniff(b""), Compression::None);
}

#[test]
fn whiteouts_and_opaque_markers_use_the_overlay_format() {
    require!(is_root(), "root (mknod and trusted.overlay xattrs)");
    let s = Scratch::new();
    let tar = RawTar::new()
        .file(b".wh.gone", b"")
        .file(b"replaced", b"x")
        .file(b".wh.replaced", b"")
        .dir(b"d")
        .file(b"d/keep", b"k")
        .file(b"d/.wh..wh..opq", b"")
        .file(b".wh..wh..opq", b"")
        .file(b"e/.wh..wh..opq", b"")
        .file(b"e/after", b"a")
        .dir(b"gone-dir")
        .file(b"gone-dir/x", b"x")
        .file(b".wh.gone-dir", b"")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    for name in ["gone", "replaced", "gone-dir"] {
        let m = lstat(&s.path(name));
        assert!(
            m.file_type().is_char_device(),
            "{name} is not a character device"
        );
        assert_eq!(m.rdev(), 0, "{name} is not 0:0");
    }
    for dir in [".", "d", "e"] {
        assert_eq!(
            lgetxattr(&s.path(dir), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
    assert_eq!(std::fs::read(s.path("d/keep")).expect("read"), b"k");
    assert_eq!(std::fs::read(s.path("e/after")).expect("read"), b"a");
    assert!(!s.path(".wh.gone").exists());
    assert!(!s.path("d/.wh..wh..opq").exists());
}

#[test]
fn metadata_is_applied() {
    require!(
        is_root(),
        "root (chown, security.capability and trusted xattrs)"
    );
    let s = Scratch::new();
    let mut f = Hdr::new(b"bin/ping", b'0');
    (f.mode, f.uid, f.gid, f.mtime) = (0o4750, 1000, 2000, 1_234_567_890);
    // VFS_CAP_REVISION_2 with cap_net_raw permitted and effective.
    let cap: &[u8] = &[
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut d = Hdr::new(b"var/tmp", b'5');
    (d.mode, d.uid, d.gid, d.mtime) = (0o1777, 3, 4, 1_000_000_000);
    let mut root = Hdr::new(b"./", b'5');
    (root.mode, root.mtime) = (0o750, 1_100_000_000);
    let tar = RawTar::new()
        .entry(&root, b"")
        .dir(b"bin")
        .pax(&[
            (b"SCHILY.xattr.security.capability", cap),
            (b"SCHILY.xattr.user.moor", b"yes"),
            (b"SCHILY.xattr.trusted.moor", b"t"),
            (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (b"SCHILY.xattr.trusted.overlay.redirect", b"/x"),
            (b"mtime", b"1234567890.5"),
        ])
        .entry(&f, b"#!ping")
        .pax(&[
            (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (b"uid", b"70000"),
        ])
        .entry(&d, b"")
        .file(b"var/tmp/child", b"c")
        .file(b"implied/deep/file", b"i")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    let m = lstat(&s.path("bin/ping"));
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4750, 1000, 2000));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
    let p = s.path("bin/ping");
    assert_eq!(lgetxattr(&p, "security.capability").as_deref(), Some(cap));
    assert_eq!(lgetxattr(&p, "user.moor").as_deref(), Some(&b"yes"[..]));
    assert_eq!(lgetxattr(&p, "trusted.moor").as_deref(), Some(&b"t"[..]));
    assert!(lgetxattr(&p, "trusted.overlay.opaque").is_none());
    assert!(lgetxattr(&p, "trusted.overlay.redirect").is_none());
    let d = lstat(&s.path("var/tmp"));
    assert_eq!(
        (d.mode() & 0o7777, d.uid(), d.gid(), d.mtime()),
        (0o1777, 70000, 4, 1_000_000_000)
    );
    assert!(lgetxattr(&s.path("var/tmp"), "trusted.overlay.opaque").is_none());
    let r = lstat(&s.dest);
    assert_eq!((r.mode() & 0o7777, r.mtime()), (0o750, 1_100_000_000));
    for implied in ["implied", "implied/deep", "var"] {
        assert_eq!(lstat(&s.path(implied)).mode() & 0o7777, 0o755, "{implied}");
    }
}

#[test]
fn device_nodes_fifos_and_setuid_files_stay_inside() {
    require!(is_root(), "root (mknod of device nodes)");
    let s = Scratch::new();
    let mut null = Hdr::new(b"dev/null", b'3');
    (null.mode, null.device) = (0o666, (1, 3));
    let mut loop0 = Hdr::new(b"dev/loop0", b'4');
    (loop0.mode, loop0.device, loop0.gid) = (0o660, (7, 0), 6);
    let mut fifo = Hdr::new(b"run/fifo", b'6');
    fifo.mode = 0o620;
    let mut su = Hdr::new(b"bin/su", b'0');
    su.mode = 0o6755;
    let tar = RawTar::new()
        .entry(&null, b"")
        .entry(&loop0, b"")
        .entry(&fifo, b"")
        .entry(&su, b"su")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    let m = lstat(&s.path("dev/null"));
    assert!(m.file_type().is_char_device());
    assert_eq!((m.rdev(), m.mode() & 0o7777), (libc::makedev(1, 3), 0o666));
    let m = lstat(&s.path("dev/loop0"));
    assert!(m.file_type().is_block_device());
    assert_eq!(
        (m.rdev(), m.mode() & 0o7777, m.gid()),
        (libc::makedev(7, 0), 0o660, 6)
    );
    let m = lstat(&s.path("run/fifo"));
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o620);
    assert_eq!(lstat(&s.path("bin/su")).mode() & 0o7777, 0o6755);
    s.assert_contained(0);
}

#[test]
fn duplicate_paths_replace_earlier_entries_whatever_the_type() {
    let s = Scratch::new();
    let tar = RawTar::new()
        // file -> directory
        .file(b"a", b"file")
        .dir(b"a")
        .file(b"a/b", b"in dir")
        // directory (with a tree) -> file
        .dir(b"d")
        .file(b"d/x", b"x")
        .file(b"d/sub/y", b"y")
        .symlink(b"d/sub/link", b"/etc")
        .file(b"d", b"now a file")
        // directory -> directory keeps its contents
        .dir(b"k")
        .file(b"k/kept", b"k")
        .dir(b"k")
        // symlink -> file, file -> symlink, file -> file
        .symlink(b"s", b"/etc/passwd")
        .file(b"s", b"plain")
        .file(b"t", b"plain")
        .symlink(b"t", b"target")
        .file(b"u", b"old")
        .file(b"u", b"new")
        // a directory replaced by a directory entry made implicitly earlier
        .file(b"m/n", b"n")
        .dir(b"m")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    assert!(lstat(&s.path("a")).is_dir());
    assert_eq!(std::fs::read(s.path("a/b")).expect("read"), b"in dir");
    assert!(lstat(&s.path("d")).is_file());
    assert_eq!(std::fs::read(s.path("d")).expect("read"), b"now a file");
    assert_eq!(std::fs::read(s.path("k/kept")).expect("read"), b"k");
    assert!(lstat(&s.path("s")).is_file());
    assert_eq!(std::fs::read(s.path("s")).expect("read"), b"plain");
    assert!(lstat(&s.path("t")).file_type().is_symlink());
    assert_eq!(std::fs::read(s.path("u")).expect("read"), b"new");
    assert_eq!(std::fs::read(s.path("m/n")).expect("read"), b"n");
    s.assert_contained(0);
}

#[test]
fn a_replaced_hardlinked_file_keeps_the_other_link() {
    let s = Scratch::new();
    let tar = RawTar::new()
        .file(b"f", b"one")
        .hardlink(b"h", b"f")
        .file(b"f", b"two")
        .hardlink(b"self", b"./self")
        .end();
    // "self" links to itself before it exists: refused.
    assert!(s.unpack(&tar, &limits()).is_err());
    s.reset();
    let tar = RawTar::new()
        .file(b"f", b"one")
        .hardlink(b"h", b"./f")
        .file(b"f", b"two")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    assert_eq!(std::fs::read(s.path("h")).expect("read"), b"one");
    assert_eq!(std::fs::read(s.path("f")).expect("read"), b"two");
}

#[test]
fn symlink_targets_are_stored_as_is() {
    let s = Scratch::new();
    let tar = RawTar::new()
        .symlink(b"abs", b"/etc/shadow")
        .symlink(b"up", b"../../../../root")
        .symlink(b"dangling", b"nowhere/at/all")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    for (name, target) in [
        ("abs", "/etc/shadow"),
        ("up", "../../../../root"),
        ("dangling", "nowhere/at/all"),
    ] {
        assert_eq!(
            std::fs::read_link(s.path(name)).expect("readlink"),
            Path::new(target)
        );
    }
    s.assert_contained(0);
}

#[test]
fn long_gnu_and_pax_names_within_the_limit_work() {
    let s = Scratch::new();
    let gnu = format!("{}/{}", "g".repeat(250), "h".repeat(250));
    let pax = format!(
        "{}/{}/{}",
        "p".repeat(255),
        "q".repeat(255),
        "r".repeat(100)
    );
    let link = format!("{}/target", "t".repeat(200));
    let tar = RawTar::new()
        .gnu_long(b'L', gnu.as_bytes())
        .file(b"placeholder-1", b"gnu")
        .pax(&[(b"path", pax.as_bytes())])
        .file(b"placeholder-2", b"pax")
        .gnu_long(b'K', link.as_bytes())
        .symlink(b"long-link", b"short")
        .pax(&[(b"path", b"pax-link"), (b"linkpath", link.as_bytes())])
        .symlink(b"placeholder-3", b"short")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    assert_eq!(std::fs::read(s.path(&gnu)).expect("read"), b"gnu");
    assert_eq!(std::fs::read(s.path(&pax)).expect("read"), b"pax");
    assert_eq!(
        std::fs::read_link(s.path("long-link")).expect("readlink"),
        Path::new(&link)
    );
    assert_eq!(
        std::fs::read_link(s.path("pax-link")).expect("readlink"),
        Path::new(&link)
    );
}

#[test]
fn sparse_files_keep_their_holes() {
    let src = tempfile::tempdir().expect("tempdir");
    let path = src.path().join("sparse");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&path).expect("create");
        f.write_all_at(b"start", 0).expect("write");
        f.write_all_at(b"middle", 4 << 20).expect("write");
        f.set_len(16 << 20).expect("len");
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_path_with_name(&path, "sparse").expect("append");
    let tar = b.into_inner().expect("finish");
    let s = Scratch::new();
    s.unpack(&tar, &limits()).expect("unpack");
    let data = std::fs::read(s.path("sparse")).expect("read");
    assert_eq!(data.len(), 16 << 20);
    assert_eq!(&data[..5], b"start");
    assert_eq!(&data[4 << 20..(4 << 20) + 6], b"middle");
    assert!(data[5..4 << 20].iter().all(|&b| b == 0));
    let m = lstat(&s.path("sparse"));
    assert!(
        m.blocks() * 512 < 1 << 20,
        "holes were filled: {} blocks",
        m.blocks()
    );
}

#[test]
fn pax_sparse_files_are_read() {
    let s = Scratch::new();
    // Format 1.0: the map is at the start of the data, padded to a block.
    let mut data = b"2\n1000\n3\n8000\n2\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(b"abcde");
    let v1 = [
        (&b"GNU.sparse.major"[..], &b"1"[..]),
        (b"GNU.sparse.minor", b"0"),
        (b"GNU.sparse.name", b"dir/one"),
        (b"GNU.sparse.realsize", b"10000"),
    ];
    // Format 0.1: the map is a record.
    let v01 = [
        (&b"GNU.sparse.major"[..], &b"0"[..]),
        (b"GNU.sparse.minor", b"1"),
        (b"GNU.sparse.name", b"dir/two"),
        (b"GNU.sparse.size", b"20"),
        (b"GNU.sparse.numblocks", b"1"),
        (b"GNU.sparse.map", b"10,2"),
    ];
    let tar = RawTar::new()
        .pax(&v1)
        .file(b"GNUSparseFile.1/one", &data)
        .pax(&v01)
        .file(b"GNUSparseFile.2/two", b"xy")
        .file(b"after", b"still in step")
        .end();
    s.unpack(&tar, &limits()).expect("unpack");
    let one = std::fs::read(s.path("dir/one")).expect("read");
    assert_eq!(one.len(), 10000);
    assert_eq!(&one[1000..1003], b"abc");
    assert_eq!(&one[8000..8002], b"de");
    assert_eq!(one.iter().filter(|&&b| b != 0).count(), 5);
    let two = std::fs::read(s.path("dir/two")).expect("read");
    assert_eq!((two.len(), &two[10..12]), (20, &b"xy"[..]));
    assert_eq!(
        std::fs::read(s.path("after")).expect("read"),
        b"still in step"
    );
    assert!(!s.path("GNUSparseFile.1").exists());
}

#[test]
fn base256_numbers_and_pax_sizes_are_read() {
    // uid in GNU base-256, size given by PAX (the header says 0, as Go writes it for
    // files over 8 GiB).
    let mut h = Hdr::new(b"f", b'0');
    h.size = 0;
    let mut b = h.block();
    b[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0x03, 0xe8]);
    octal(&mut b[124..136], 0);
    checksum(&mut b);
    let mut tar = RawTar::new().pax(&[(b"size", b"5")]).out.clone();
    tar.extend_from_slice(&b);
    tar.extend_from_slice(&RawTar::new().data(b"hello").end());
    let s = Scratch::new();
    let got = s.unpack(&tar, &limits()).expect("unpack");
    assert_eq!(got.entries, 1);
    assert_eq!(std::fs::read(s.path("f")).expect("read"), b"hello");
    if is_root() {
        assert_eq!(lstat(&s.path("f")).uid(), 1000);
    }
}

#[test]
fn the_destination_can_be_synced() {
    let s = Scratch::new();
    let tar = RawTar::new().file(b"a", b"1").end();
    s.unpack(&tar, &limits()).expect("unpack");
    super::super::sync_dir(&s.dest).expect("syncfs");
}
