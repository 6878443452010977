//! moor and the other tools of the trade exchange images: skopeo pushes what moor
//! saved and moor pulls and runs it; skopeo fetches what moor pushed and umoci
//! unpacks it; skopeo reads `moor image save` archives; moor imports skopeo's OCI
//! layouts, `docker save` archives made here, and gzip- and zstd-compressed archives;
//! `moor image preload` imports a directory of archives once.

#[path = "common/image_util.rs"]
mod image_util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use image_util::{Env, go_arch, images_dir, printed_digest, s};
use serde_json::Value;
use tests::oci::{self, Tar};
use tests::registry::{Auth, DockerRegistry};
use tests::{prereq, registry};

/// Runs a tool to success; returns its stdout.
fn tool(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {}: {}\n{}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo --insecure-policy --tmpdir T --registries.d D ARGS…` (no policy, signature
/// or temporary files outside the test's directory).
fn skopeo(env: &Env, program: &Path, args: &[&str]) -> String {
    let tmp = env.path("skopeo-tmp");
    let regd = env.path("skopeo-registries.d");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    std::fs::create_dir_all(&regd).expect("mkdir");
    let mut all = vec![
        "--insecure-policy",
        "--tmpdir",
        tmp.to_str().expect("utf-8"),
        "--registries.d",
        regd.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    tool(program, &all)
}

/// A single-layer image of Debian's static busybox with `/etc/marker`, running
/// `cat /etc/marker`.
fn marker_image(marker: &str) -> oci::ImageBlobs {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
    let layer = Tar::new()
        .dir("bin", 0o755)
        .file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .symlink("bin/cat", "busybox")
        .dir("etc", 0o755)
        .file("etc/marker", 0o644, marker.as_bytes())
        .finish();
    oci::image_blobs(&[layer], &["/bin/cat", "/etc/marker"], go_arch())
}

/// Bundles `reference` of `data`, runs it in the foreground and returns its stdout.
fn run_to_end(env: &Env, data: &Path, reference: &str, name: &str) -> String {
    let bundle = env.bundle(data, reference, name);
    let ran = bundle.run(name);
    assert_eq!(ran.code(), Some(0), "{ran:?}");
    bundle.remove();
    ran.stdout
}

#[test]
fn skopeo_pushes_a_saved_image_that_moor_pulls_and_runs() {
    let Some(env) = Env::new("interop-skopeo-push") else {
        return;
    };
    let (Some(skopeo_bin), Some(reg_bin)) = (prereq::program("skopeo"), registry::program()) else {
        return;
    };
    let reg = DockerRegistry::start(&reg_bin, &env.path("registry"), &Auth::None);
    let (_, hello) = env.build_base(&env.data);
    let archive = env.path("hello.tar");
    env.ok(&["save", "moor.local/hello:latest", "-o", s(&archive)]);
    let target = format!("{}/x:1", reg.authority());
    skopeo(
        &env,
        &skopeo_bin,
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci-archive:{}:latest", s(&archive)),
            &format!("docker://{target}"),
        ],
    );
    let fresh = env.path("pulled");
    let pulled = env.ok_in(&fresh, &["pull", "--plain-http", &target]);
    // skopeo keeps the OCI manifest as it is, so the digest is moor's.
    assert_eq!(printed_digest(&pulled.stdout, &target), hello);
    let answer = env.run_hello(&fresh, &target, "skopeo-pushed");
    assert!(answer.contains("hello from moor"), "{answer}");
    env.assert_store_sane(&fresh);
}

#[test]
fn skopeo_and_umoci_read_what_moor_pushes_and_moor_imports_their_layout() {
    let Some(env) = Env::new("interop-umoci") else {
        return;
    };
    let (Some(skopeo_bin), Some(umoci_bin), Some(reg_bin)) = (
        prereq::program("skopeo"),
        prereq::program("umoci"),
        registry::program(),
    ) else {
        return;
    };
    let reg = DockerRegistry::start(&reg_bin, &env.path("registry"), &Auth::None);
    let (_, hello) = env.build_base(&env.data);
    let target = format!("{}/moor/hello:1", reg.authority());
    env.ok(&["push", "--plain-http", "moor.local/hello:latest", &target]);

    let layout = env.path("layout");
    skopeo(
        &env,
        &skopeo_bin,
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{target}"),
            &format!("oci:{}:t1", s(&layout)),
        ],
    );
    let unpacked = env.path("umoci-bundle");
    tool(
        &umoci_bin,
        &[
            "unpack",
            "--image",
            &format!("{}:t1", s(&layout)),
            s(&unpacked),
        ],
    );
    let rootfs = unpacked.join("rootfs");
    let cgi = rootfs.join("www/cgi-bin/index.cgi");
    assert_eq!(
        std::fs::read(&cgi).expect("index.cgi unpacked by umoci"),
        std::fs::read(images_dir().join("hello/www/cgi-bin/index.cgi")).expect("recipe's file")
    );
    let mode = std::fs::metadata(&cgi).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).expect("bin/sh link"),
        PathBuf::from("busybox")
    );
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(unpacked.join("config.json")).expect("umoci's config.json"),
    )
    .expect("json");
    assert_eq!(config["process"]["args"][0], "/bin/httpd");

    // skopeo's layout names the image by tag only: moor imports it and --tag names it.
    let fresh = env.path("imported");
    let untagged = env.ok_in(&fresh, &["import", s(&layout)]);
    assert!(untagged.stdout.contains("t1 "), "{}", untagged.stdout);
    assert!(untagged.stdout.contains("no name"), "{}", untagged.stdout);
    let imported = env.ok_in(
        &fresh,
        &["import", s(&layout), "--tag", "moor.test/skopeo:t1"],
    );
    assert_eq!(
        printed_digest(&imported.stdout, "moor.test/skopeo:t1"),
        hello
    );
    let answer = env.run_hello(&fresh, "moor.test/skopeo:t1", "from-layout");
    assert!(answer.contains("hello from moor"), "{answer}");
    env.assert_store_sane(&fresh);
}

#[test]
fn saved_archives_read_with_skopeo_and_import_plain_gzip_and_zstd() {
    let Some(env) = Env::new("interop-save") else {
        return;
    };
    let Some(skopeo_bin) = prereq::program("skopeo") else {
        return;
    };
    let (busybox, hello) = env.build_base(&env.data);
    let one = env.path("hello.tar");
    env.ok(&["save", "moor.local/hello:latest", "-o", s(&one)]);
    let inspected: Value = serde_json::from_str(&skopeo(
        &env,
        &skopeo_bin,
        &["inspect", &format!("oci-archive:{}:latest", s(&one))],
    ))
    .expect("skopeo inspect JSON");
    assert_eq!(inspected["Digest"], hello.as_str());
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        inspected["Labels"]["org.opencontainers.image.title"],
        "hello"
    );
    let raw = skopeo(
        &env,
        &skopeo_bin,
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}:latest", s(&one)),
        ],
    );
    assert_eq!(oci::digest(raw.as_bytes()), hello);

    // Equal content, equal bytes.
    let twice = env.path("hello-again.tar");
    env.ok(&["save", "moor.local/hello:latest", "-o", s(&twice)]);
    assert_eq!(std::fs::read(&one).ok(), std::fs::read(&twice).ok());

    let both = env.path("both.tar");
    env.ok(&[
        "save",
        "moor.local/busybox:latest",
        "moor.local/hello:latest",
        "-o",
        s(&both),
    ]);
    let bytes = std::fs::read(&both).expect("read archive");
    let gz = env.path("both.tar.gz");
    let zst = env.path("both.tar.zst");
    std::fs::write(&gz, oci::gzip(&bytes)).expect("write");
    std::fs::write(&zst, oci::zstd(&bytes)).expect("write");
    let expected = vec![
        ("moor.local/busybox:latest".to_string(), busybox.clone()),
        ("moor.local/hello:latest".to_string(), hello.clone()),
    ];
    for (name, file) in [("plain", &both), ("gzip", &gz), ("zstd", &zst)] {
        let data = env.path(&format!("imported-{name}"));
        let ran = env.ok_in(&data, &["import", s(file)]);
        assert_eq!(
            printed_digest(&ran.stdout, "moor.local/hello:latest"),
            hello,
            "{name}"
        );
        assert_eq!(env.listed(&data), expected, "{name}");
        env.assert_store_sane(&data);
    }
    let data = env.path("imported-zstd");
    let answer = env.run_hello(&data, "moor.local/hello:latest", "from-zstd");
    assert!(answer.contains("hello from moor"), "{answer}");
    // --tag needs exactly one image.
    env.fails_in(
        &data,
        &["import", s(&both), "--tag", "moor.test/two:1"],
        "exactly one image",
    );
}

#[test]
fn docker_save_archives_made_by_hand_import_and_run() {
    let Some(env) = Env::new("interop-docker") else {
        return;
    };
    let image = marker_image("from docker save\n");
    let tar = oci::docker_save_tar(&image, &["moor.test/dsave:1", "moor.test/dsave:latest"]);
    let plain = env.path("dsave.tar");
    let gz = env.path("dsave.tar.gz");
    let zst = env.path("dsave.tar.zst");
    std::fs::write(&plain, &tar).expect("write");
    std::fs::write(&gz, oci::gzip(&tar)).expect("write");
    std::fs::write(&zst, oci::zstd(&tar)).expect("write");
    let mut digests = Vec::new();
    for (name, file) in [("plain", &plain), ("gzip", &gz), ("zstd", &zst)] {
        let data = env.path(&format!("data-{name}"));
        let ran = env.ok_in(&data, &["import", s(file)]);
        let digest = printed_digest(&ran.stdout, "moor.test/dsave:1");
        assert_eq!(
            printed_digest(&ran.stdout, "moor.test/dsave:latest"),
            digest
        );
        let inspected = env.inspect(&data, "moor.test/dsave:1");
        assert_eq!(
            inspected["config"]["rootfs"]["diff_ids"][0],
            oci::digest(&image.layers[0].1).as_str()
        );
        digests.push(digest);
    }
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "the same archive, compressed or not, imports as one image: {digests:?}"
    );
    let out = run_to_end(&env, &env.path("data-gzip"), "moor.test/dsave:1", "dsave");
    assert_eq!(out, "from docker save\n");
    env.assert_store_sane(&env.path("data-gzip"));
}

#[test]
fn preload_imports_each_archive_once_and_reports_a_corrupt_one() {
    let Some(env) = Env::new("interop-preload") else {
        return;
    };
    let (busybox, hello) = env.build_base(&env.data);
    let dir = env.path("preload");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let hello_tar = dir.join("hello.tar");
    env.ok(&["save", "moor.local/hello:latest", "-o", s(&hello_tar)]);
    let saved = env.path("busybox.tar");
    env.ok(&["save", "moor.local/busybox:latest", "-o", s(&saved)]);
    let busybox_gz = dir.join("busybox.tar.gz");
    std::fs::write(
        &busybox_gz,
        oci::gzip(&std::fs::read(&saved).expect("read")),
    )
    .expect("write");
    // Cut in the middle of a blob: a corrupt archive.
    let whole = std::fs::read(&hello_tar).expect("read");
    let broken = dir.join("broken.tar");
    std::fs::write(&broken, &whole[..whole.len() / 2]).expect("write");
    std::fs::write(dir.join(".hidden"), b"ignored").expect("write");

    let data = env.path("appliance");
    let first = env.run_in(&data, &["preload", s(&dir)]);
    image_util::assert_clean_failure(&first, "could not be imported", "first preload");
    assert!(
        first
            .stderr
            .contains(&format!("moor: preload: {}: ", s(&broken))),
        "{}",
        first.stderr
    );
    assert!(!first.stderr.contains(".hidden"), "{}", first.stderr);
    let mut imported: Vec<&str> = first
        .stdout
        .lines()
        .filter(|l| l.starts_with("imported "))
        .collect();
    imported.sort();
    assert_eq!(
        imported,
        [
            format!(
                "imported {} moor.local/busybox:latest {busybox}",
                s(&busybox_gz)
            ),
            format!("imported {} moor.local/hello:latest {hello}", s(&hello_tar)),
        ]
    );
    assert_eq!(env.ls(&data).len(), 2);

    // Again: the good archives are unchanged, the broken one is tried and reported again.
    let second = env.run_in(&data, &["preload", s(&dir)]);
    image_util::assert_clean_failure(&second, "1 of the archives", "second preload");
    assert!(!second.stdout.contains("imported"), "{}", second.stdout);
    let mut unchanged: Vec<&str> = second.stdout.lines().collect();
    unchanged.sort();
    assert_eq!(
        unchanged,
        [
            format!("unchanged {}", s(&busybox_gz)),
            format!("unchanged {}", s(&hello_tar)),
        ]
    );

    // Fixed: imported; touched but equal: unchanged (after hashing it).
    std::fs::write(&broken, &whole).expect("write");
    let file = std::fs::File::options()
        .append(true)
        .open(&hello_tar)
        .expect("open");
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .expect("touch");
    let third = env.ok_in(&data, &["preload", s(&dir)]);
    assert!(
        third.stdout.contains(&format!(
            "imported {} moor.local/hello:latest {hello}",
            s(&broken)
        )),
        "{}",
        third.stdout
    );
    assert!(
        third
            .stdout
            .contains(&format!("unchanged {}", s(&hello_tar))),
        "{}",
        third.stdout
    );
    let fourth = env.ok_in(&data, &["preload", s(&dir)]);
    assert_eq!(
        fourth.stdout.matches("unchanged ").count(),
        3,
        "{}",
        fourth.stdout
    );
    assert_eq!(
        env.listed(&data),
        [
            ("moor.local/busybox:latest".to_string(), busybox),
            ("moor.local/hello:latest".to_string(), hello),
        ]
    );
    env.assert_store_sane(&data);
}
