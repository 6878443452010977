//! Hostile and broken image input through the command line: layers that climb out
//! (`../x`, an entry below a symlink, a hardlink out), blobs whose content is not their
//! digest, digests that are paths, manifests whose media type lies, a manifest larger
//! than the spec allows, a pull killed mid-download, and two pulls of one image at
//! once. Each is refused with exit code 1 and a message naming the problem (never a
//! panic), nothing escapes the store, and the store still works afterwards.

#[path = "common/image_util.rs"]
mod image_util;

use std::path::Path;
use std::process::{Child, Stdio};

use image_util::{DEADLINE, Env, go_arch, printed_digest, read_names, s};
use serde_json::{Value, json};
use tests::fake_registry::FakeRegistry;
use tests::moor::finish;
use tests::oci::{self, Layout, OCI_INDEX, OCI_MANIFEST, Tar};
use tests::wait;

/// An OCI layout at `dir` holding one image of `layers`, named `name`.
fn layout_with(dir: &Path, layers: &[Vec<u8>], name: &str) -> oci::ImageBlobs {
    let image = oci::image_blobs(layers, &["/bin/sh"], go_arch());
    let layout = Layout::new(dir);
    layout.image(&image);
    let mut desc = oci::descriptor(OCI_MANIFEST, &image.manifest);
    desc["annotations"] = json!({"io.containerd.image.name": name});
    layout.index_of(&[desc]);
    image
}

/// Puts the image `digest` of the store in `data` on `fake` as `repo:tag`.
fn serve_image(fake: &FakeRegistry, data: &Path, digest: &str, repo: &str, tag: &str) {
    let blob = |d: &str| {
        let hex = d.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::read(data.join("images/blobs/sha256").join(hex)).expect("read blob from store")
    };
    let manifest_bytes = blob(digest);
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest JSON");
    fake.put_blob(blob(manifest["config"]["digest"].as_str().expect("config")));
    for l in manifest["layers"].as_array().expect("layers") {
        fake.put_blob(blob(l["digest"].as_str().expect("layer digest")));
    }
    fake.put_manifest(repo, tag, manifest_bytes, OCI_MANIFEST, true);
}

/// After a refused operation: `ls` works and the store holds no leftovers.
fn assert_store_works(env: &Env, data: &Path) {
    env.assert_store_sane(data);
    assert!(env.leases(data).is_empty(), "{:?}", env.leases(data));
}

#[test]
fn layers_that_climb_out_are_refused_naming_the_entry() {
    let Some(env) = Env::new("bad-layers") else {
        return;
    };
    // What an escape would touch: a directory and a file outside the store.
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let victim = outside.join("victim");
    std::fs::write(&victim, b"untouched").expect("write");
    let outside_s = s(&outside).to_string();
    let victim_s = s(&victim).to_string();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            Tar::new()
                .file("ok", 0o644, b"fine")
                .file("../x", 0o644, b"escaped")
                .finish(),
            "\"../x\"",
        ),
        (
            "deep-dotdot",
            Tar::new()
                .dir("a", 0o755)
                .file("a/../../../../x", 0o644, b"escaped")
                .finish(),
            "a/../../../../x",
        ),
        (
            "below-symlink",
            Tar::new()
                .symlink("link", &outside_s)
                .file("link/evil", 0o644, b"escaped")
                .finish(),
            "\"link/evil\"",
        ),
        (
            "below-relative-symlink",
            Tar::new()
                .symlink("up", "../../../../../../..")
                .file("up/evil", 0o644, b"escaped")
                .finish(),
            "\"up/evil\"",
        ),
        (
            "hardlink-out",
            Tar::new().hardlink("h", &victim_s).finish(),
            "\"h\"",
        ),
        (
            "hardlink-dotdot",
            Tar::new()
                .hardlink("h", "../../../../../etc/passwd")
                .finish(),
            "\"h\"",
        ),
    ];
    for (name, layer, needle) in cases {
        let layout = env.path(&format!("layout-{name}"));
        let reference = format!("moor.test/evil-{name}:1");
        let image = layout_with(&layout, &[layer], &reference);
        // The blobs are what they say they are: the import itself succeeds.
        let imported = env.ok(&["import", s(&layout)]);
        assert_eq!(
            printed_digest(&imported.stdout, &reference),
            image.manifest_digest()
        );
        let dir = env.path(&format!("bundle-{name}"));
        let ran = env.fails(&["bundle", &reference, s(&dir)], needle);
        assert!(
            ran.stderr.contains("unpacking layer"),
            "{name}: {}",
            ran.stderr
        );
        assert!(
            !dir.exists(),
            "{name}: a failed bundle left {}",
            dir.display()
        );
        assert!(image_util::mounted_below(&dir).is_empty());
        assert_store_works(&env, &env.data);
        assert!(env.unpacked_layers(&env.data).is_empty(), "{name}");
    }
    assert_eq!(read_names(&outside), ["victim"]);
    assert_eq!(
        std::fs::read(&victim).ok().as_deref(),
        Some(&b"untouched"[..])
    );
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&victim).expect("stat").nlink(), 1);
    }
    let escaped: Vec<_> = tests::host::tree(env.scratch.dir(), &[])
        .into_iter()
        .filter(|p| p.ends_with("x") || p.ends_with("evil"))
        .collect();
    assert!(
        escaped.is_empty(),
        "files written outside a layer: {escaped:?}"
    );

    // The store still works: a good image builds, bundles and runs.
    env.build_base(&env.data);
    let bundle = env.bundle(&env.data, "moor.local/busybox:latest", "good");
    bundle.edit_config(|c| c["process"]["args"] = json!(["sh", "-c", "echo ok"]));
    let ran = bundle.run("good");
    assert_eq!((ran.code(), ran.stdout.as_str()), (Some(0), "ok\n"));
    bundle.remove();
}

#[test]
fn layouts_with_wrong_digests_or_lying_media_types_are_refused() {
    let Some(env) = Env::new("bad-layout") else {
        return;
    };
    let layer = Tar::new().file("a", 0o644, b"a").finish();

    // A layer blob whose content is not its name's digest.
    let dir = env.path("wrong-digest");
    layout_with(&dir, std::slice::from_ref(&layer), "moor.test/wrong:1");
    let layer_hex = oci::hex(&layer);
    let mut tampered = layer.clone();
    tampered[600] ^= 0xff;
    Layout::new(&dir).blob_as(&layer_hex, &tampered);
    let ran = env.fails(&["import", s(&dir)], &format!("sha256:{layer_hex}"));
    assert!(
        ran.stderr.contains(&format!(
            "the content's digest is {}",
            oci::digest(&tampered)
        )),
        "{}",
        ran.stderr
    );
    assert!(
        env.ls(&env.data).is_empty(),
        "a refused import tagged something"
    );
    assert!(!env.blobs(&env.data).contains(&layer_hex));
    assert_store_works(&env, &env.data);

    // Digests that are paths, in index.json and in a manifest.
    let dir = env.path("path-digest");
    let layout = Layout::new(&dir);
    layout.index_of(&[json!({"mediaType": OCI_MANIFEST, "digest": "sha256:../../x", "size": 2})]);
    env.fails(&["import", s(&dir)], "sha256:../../x");
    let dir = env.path("path-digest-layer");
    let image = layout_with(&dir, std::slice::from_ref(&layer), "moor.test/path:1");
    let mut manifest: Value = serde_json::from_slice(&image.manifest).expect("json");
    manifest["layers"][0]["digest"] = json!("sha256:../../../../etc/passwd");
    let bytes = manifest.to_string().into_bytes();
    let layout = Layout::new(&dir);
    layout.blob(&bytes);
    layout.index_of(&[oci::descriptor(OCI_MANIFEST, &bytes)]);
    env.fails(&["import", s(&dir)], "../../../../etc/passwd");
    let dir = env.path("bad-algorithm");
    let layout = Layout::new(&dir);
    layout.index_of(&[json!({"mediaType": OCI_MANIFEST, "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 2})]);
    env.fails(&["import", s(&dir)], "md5");
    assert!(env.ls(&env.data).is_empty());
    assert_store_works(&env, &env.data);

    // index.json says "manifest", the blob is an index.
    let dir = env.path("lie-index");
    let image = layout_with(&dir, std::slice::from_ref(&layer), "moor.test/lie:1");
    let inner = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [oci::descriptor(OCI_MANIFEST, &image.manifest)],
    })
    .to_string()
    .into_bytes();
    let layout = Layout::new(&dir);
    layout.blob(&inner);
    layout.index_of(&[oci::descriptor(OCI_MANIFEST, &inner)]);
    let ran = env.fails(&["import", s(&dir)], "manifest");
    assert!(
        ran.stderr.contains(OCI_MANIFEST) || ran.stderr.contains(OCI_INDEX),
        "the error names the media types: {}",
        ran.stderr
    );
    // A manifest that calls itself an index.
    let dir = env.path("lie-self");
    let image = layout_with(&dir, std::slice::from_ref(&layer), "moor.test/self:1");
    let mut manifest: Value = serde_json::from_slice(&image.manifest).expect("json");
    manifest["mediaType"] = json!(OCI_INDEX);
    let bytes = manifest.to_string().into_bytes();
    let layout = Layout::new(&dir);
    layout.blob(&bytes);
    layout.index_of(&[oci::descriptor(OCI_MANIFEST, &bytes)]);
    env.fails(&["import", s(&dir)], OCI_INDEX);
    assert!(env.ls(&env.data).is_empty());
    assert_store_works(&env, &env.data);

    // A layout whose blobs are fine imports into the same store afterwards.
    let dir = env.path("good");
    let image = layout_with(&dir, &[layer], "moor.test/good:1");
    let ran = env.ok(&["import", s(&dir)]);
    assert_eq!(
        printed_digest(&ran.stdout, "moor.test/good:1"),
        image.manifest_digest()
    );
    assert_store_works(&env, &env.data);
}

#[test]
fn registries_serving_huge_or_lying_manifests_are_refused() {
    let Some(env) = Env::new("bad-registry") else {
        return;
    };
    let (_, hello) = env.build_base(&env.data);
    let fake = FakeRegistry::start();
    let host = fake.authority();
    serve_image(&fake, &env.data, &hello, "moor/hello", "1");
    // 5 MiB of valid JSON.
    let huge = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "annotations": {"padding": "x".repeat(5 << 20)},
    })
    .to_string()
    .into_bytes();
    fake.put_manifest("moor/hello", "huge", huge.clone(), OCI_MANIFEST, true);
    fake.put_manifest("moor/hello", "huge-unsized", huge, OCI_MANIFEST, false);
    // A manifest served as an index.
    let manifest = std::fs::read(
        env.data
            .join("images/blobs/sha256")
            .join(hello.trim_start_matches("sha256:")),
    )
    .expect("hello's manifest");
    fake.put_manifest("moor/hello", "lying", manifest, OCI_INDEX, true);

    let data = env.path("pulled");
    for tag in ["huge", "huge-unsized"] {
        let r = format!("{host}/moor/hello:{tag}");
        let ran = env.fails_in(
            &data,
            &["pull", "--plain-http", &r],
            "larger than 4194304 bytes",
        );
        assert!(ran.stderr.contains(&host), "{}", ran.stderr);
        assert!(env.ls(&data).is_empty());
        assert_store_works(&env, &data);
    }
    let r = format!("{host}/moor/hello:lying");
    let ran = env.fails_in(&data, &["pull", "--plain-http", &r], OCI_INDEX);
    assert!(ran.stderr.contains("says it is"), "{}", ran.stderr);
    assert!(env.ls(&data).is_empty());
    assert_store_works(&env, &data);

    let r = format!("{host}/moor/hello:1");
    let ran = env.ok_in(&data, &["pull", "--plain-http", &r]);
    assert_eq!(printed_digest(&ran.stdout, &r), hello);
    assert_store_works(&env, &data);
}

/// Starts `moor image pull --plain-http REF` into `data`, output to files.
fn spawn_pull(env: &Env, data: &Path, reference: &str, stem: &str) -> Child {
    let mut cmd = env.command(data, &["pull", "--plain-http", reference]);
    let file = |ext: &str| {
        std::fs::File::create(env.path(&format!("{stem}.{ext}"))).expect("create output file")
    };
    cmd.stdout(Stdio::from(file("out")))
        .stderr(Stdio::from(file("err")));
    cmd.spawn().expect("spawn moor image pull")
}

/// Waits for `child` (spawned by [`spawn_pull`]); returns its exit code and stdout.
fn wait_pull(env: &Env, child: Child, stem: &str) -> (Option<i32>, String, String) {
    let ran = finish(child, stem);
    let read =
        |ext: &str| std::fs::read_to_string(env.path(&format!("{stem}.{ext}"))).unwrap_or_default();
    (ran.code(), read("out"), read("err"))
}

#[test]
fn a_pull_killed_mid_download_leaves_a_store_the_next_pull_completes() {
    let Some(env) = Env::new("bad-killed") else {
        return;
    };
    let (_, hello) = env.build_base(&env.data);
    let fake = FakeRegistry::start();
    serve_image(&fake, &env.data, &hello, "moor/hello", "1");
    let reference = format!("{}/moor/hello:1", fake.authority());
    fake.hold_blobs(100_000);

    let data = env.path("pulled");
    let mut child = spawn_pull(&env, &data, &reference, "killed");
    let tmp = data.join("images/tmp");
    wait::wait_until(
        "part of the layer to reach the store's tmp/",
        DEADLINE,
        || {
            fake.half_sent() > 0
                && read_names(&tmp)
                    .iter()
                    .any(|n| std::fs::metadata(tmp.join(n)).is_ok_and(|m| m.len() > 0))
        },
    );
    child.kill().expect("kill -9 the pull");
    let status = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(
        !read_names(&tmp).is_empty(),
        "the killed pull left its partial file"
    );

    // The next user of the store sees a consistent store and removes the leftovers.
    assert!(env.ls(&data).is_empty(), "a killed pull tagged something");
    assert_store_works(&env, &data);
    fake.release_blobs();
    let ran = env.ok_in(&data, &["pull", "--plain-http", &reference]);
    assert_eq!(printed_digest(&ran.stdout, &reference), hello);
    assert_eq!(env.listed(&data), [(reference.clone(), hello.clone())]);
    assert_store_works(&env, &data);
    let answer = env.run_hello(&data, &reference, "after-kill");
    assert!(answer.contains("hello from moor"), "{answer}");
}

#[test]
fn two_pulls_of_one_image_at_once_both_succeed() {
    let Some(env) = Env::new("bad-concurrent") else {
        return;
    };
    let (_, hello) = env.build_base(&env.data);
    let fake = FakeRegistry::start();
    serve_image(&fake, &env.data, &hello, "moor/hello", "1");
    let reference = format!("{}/moor/hello:1", fake.authority());
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            env.data
                .join("images/blobs/sha256")
                .join(hello.trim_start_matches("sha256:")),
        )
        .expect("manifest"),
    )
    .expect("json");
    let big = manifest["layers"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    fake.hold_blobs(100_000);

    let data = env.path("pulled");
    let first = spawn_pull(&env, &data, &reference, "first");
    let second = spawn_pull(&env, &data, &reference, "second");
    // Both are inside the download of the big layer before either may finish it.
    wait::wait_until("both pulls to ask for the big layer", DEADLINE, || {
        fake.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path().ends_with(&big))
            .count()
            >= 2
    });
    fake.release_blobs();
    let mut digests = Vec::new();
    let mut unpacks = 0;
    for (child, stem) in [(first, "first"), (second, "second")] {
        let (code, out, err) = wait_pull(&env, child, stem);
        assert_eq!(code, Some(0), "{stem}: {err}");
        digests.push(printed_digest(&out, &reference));
        unpacks += err.lines().filter(|l| l.contains(": unpacked ")).count();
    }
    assert_eq!(digests, [hello.clone(), hello.clone()]);
    // Each layer was unpacked by one of them; the other waited and reused it.
    assert_eq!(unpacks, 2, "two layers, each unpacked once");
    assert_eq!(env.listed(&data), [(reference.clone(), hello)]);
    assert_eq!(env.unpacked_layers(&data).len(), 2);
    assert_store_works(&env, &data);
}
