//! `moor image build`, `bundle` and the store's bookkeeping, end to end: the
//! repository's busybox and hello recipes build reproducibly, `ls` and `inspect` show
//! what was built, a bundle of hello runs and serves HTTP, and `rm`, `prune` and leases
//! keep exactly what is still used (shared base layers once).

#[path = "common/image_util.rs"]
mod image_util;

use image_util::Env;
use serde_json::json;

/// The `removed B blobs and L layers` counts `prune` printed.
fn pruned(stdout: &str) -> (u64, u64) {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    match words.as_slice() {
        ["removed", blobs, "blobs", "and", layers, "layers,", ..] => (
            blobs.parse().expect("blob count"),
            layers.parse().expect("layer count"),
        ),
        _ => panic!("unexpected prune output: {stdout:?}"),
    }
}

#[test]
fn builds_are_reproducible_and_the_epoch_changes_them() {
    let Some(env) = Env::new("build-repro") else {
        return;
    };
    let (a, b, c) = (env.path("a"), env.path("b"), env.path("c"));
    let first = env.build_base(&a);
    let second = env.build_base(&b);
    assert_eq!(first, second, "two data dirs, same recipes: same digests");
    let busybox = env.build(&c, "busybox", &[("SOURCE_DATE_EPOCH", "1700000000")]);
    let hello = env.build(&c, "hello", &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_ne!(busybox, first.0, "SOURCE_DATE_EPOCH must change busybox");
    assert_ne!(hello, first.1, "SOURCE_DATE_EPOCH must change hello");
    let stamped = env.inspect(&c, "moor.local/hello:latest");
    assert_eq!(stamped["config"]["created"], "2023-11-14T22:13:20Z");

    // ls shows both, complete, with the build's time and this machine's platform.
    let rows = env.ls(&a);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["reference"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["moor.local/busybox:latest", "moor.local/hello:latest"]
    );
    for (row, digest) in rows.iter().zip([&first.0, &first.1]) {
        assert_eq!(row["digest"], json!(digest));
        assert_eq!(row["complete"], true);
        assert_eq!(row["created"], "1970-01-01T00:00:00Z");
        assert!(
            row["platform"]
                .as_str()
                .is_some_and(|p| p.starts_with("linux/")),
            "{row}"
        );
        assert!(row["size"].as_u64().is_some_and(|s| s > 500_000), "{row}");
    }
    let table = env.ok_in(&a, &["ls"]).stdout;
    assert!(table.starts_with("REFERENCE"), "{table}");
    assert!(table.contains("moor.local/hello:latest"), "{table}");
    let quiet = env.ok_in(&a, &["ls", "-q"]).stdout;
    assert_eq!(
        quiet,
        "moor.local/busybox:latest\nmoor.local/hello:latest\n"
    );

    // inspect: the recipe's settings, and hello's first layer is busybox's.
    let hello = env.inspect(&a, "moor.local/hello:latest");
    let base = env.inspect(&a, "moor.local/busybox");
    assert_eq!(hello["digest"], json!(first.1));
    assert_eq!(hello["manifestDigest"], json!(first.1));
    let config = &hello["config"]["config"];
    assert_eq!(
        config["Entrypoint"],
        json!(["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])
    );
    assert_eq!(config["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(
        config["Labels"]["org.opencontainers.image.title"],
        json!("hello")
    );
    assert_eq!(base["config"]["config"]["Cmd"], json!(["sh"]));
    let layers = hello["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["digest"], base["layers"][0]["digest"]);
    assert_eq!(layers[0]["chainId"], base["layers"][0]["chainId"]);
    assert_eq!(
        hello["manifest"]["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // Two images of 3 blobs each, the shared base layer blob stored once: 6, not 7.
    assert_eq!(env.blobs(&a).len(), 6, "{:?}", env.blobs(&a));
    env.assert_store_sane(&a);
    let missing = env.fails_in(&a, &["inspect", "moor.local/nothing:1"], "not in the store");
    assert!(missing.stdout.is_empty());
}

#[test]
fn hello_bundle_serves_http_and_unbundle_leaves_nothing() {
    let Some(env) = Env::new("build-hello") else {
        return;
    };
    let (_, hello) = env.build_base(&env.data);
    let bundle = env.bundle(&env.data, "moor.local/hello:latest", "hello");
    let config = bundle.config();
    assert_eq!(
        config["process"]["args"],
        json!(["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])
    );
    assert_eq!(
        config["annotations"]["org.opencontainers.image.manifest.digest"],
        json!(hello)
    );
    assert!(bundle.dir.join("rootfs/www/cgi-bin/index.cgi").is_file());
    {
        // The mounted root holds the image's setuid files: root alone walks into it.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode();
        assert_eq!(mode(&bundle.dir) & 0o777, 0o700);
        assert_eq!(mode(&env.data.join("images/layers")) & 0o777, 0o700);
    }
    assert!(
        env.leases(&env.data).contains(&bundle.lease()),
        "bundle holds no lease"
    );
    assert_eq!(
        image_util::mounted_below(&bundle.dir),
        [bundle.dir.join("rootfs").to_string_lossy().into_owned()]
    );
    let id = bundle.run_detached("hello");
    let answer = bundle.fetch(&id, "http://127.0.0.1:8080/");
    assert!(answer.contains("hello from moor\n"), "{answer}");
    assert!(answer.contains("request: GET / from "), "{answer}");
    let dir = bundle.dir.clone();
    bundle.remove();
    assert!(image_util::mounted_below(&dir).is_empty());
    assert!(env.leases(&env.data).is_empty());
    // The layers stay (the image is still tagged) until a prune finds them unused.
    assert_eq!(env.unpacked_layers(&env.data).len(), 2);
    env.assert_store_sane(&env.data);
}

#[test]
fn rm_untags_and_prune_keeps_what_bundles_lease() {
    let Some(env) = Env::new("build-prune") else {
        return;
    };
    let data = &env.data;
    env.build_base(data);
    let base = env.bundle(data, "moor.local/busybox:latest", "base");
    let hello = env.bundle(data, "moor.local/hello:latest", "hello");
    // The base layer is unpacked once, shared by both bundles.
    assert_eq!(env.unpacked_layers(data).len(), 2);
    let inspected = env.inspect(data, "moor.local/hello:latest");
    let chains: Vec<String> = inspected["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            assert_eq!(l["unpacked"], true, "{l}");
            l["chainId"].as_str().unwrap_or_default()[7..].to_string()
        })
        .collect();
    assert_eq!(env.unpacked_layers(data), {
        let mut c = chains.clone();
        c.sort();
        c
    });
    let id = hello.run_detached("hello");
    assert!(
        hello
            .fetch(&id, "http://127.0.0.1:8080/")
            .contains("hello from")
    );

    env.ok(&["rm", "moor.local/hello:latest"]);
    let listed: Vec<String> = env.listed(data).into_iter().map(|(r, _)| r).collect();
    assert_eq!(listed, ["moor.local/busybox:latest"]);
    env.fails(&["inspect", "moor.local/hello:latest"], "not in the store");
    env.fails(&["rm", "moor.local/hello:latest"], "not in the store");
    env.fails(
        &["bundle", "moor.local/hello:latest", "/nonexistent-x"],
        "not in the store",
    );

    // hello's manifest, config and own layer blob go; its layers are leased.
    assert_eq!(pruned(&env.ok(&["prune"]).stdout), (3, 0));
    assert_eq!(env.unpacked_layers(data).len(), 2);
    assert!(
        hello
            .fetch(&id, "http://127.0.0.1:8080/")
            .contains("hello from"),
        "the container of an untagged, pruned image still serves"
    );
    hello.remove();
    assert_eq!(pruned(&env.ok(&["prune"]).stdout), (0, 1));
    assert_eq!(env.unpacked_layers(data), [chains[0].clone()]);

    env.ok(&["rm", "moor.local/busybox"]);
    assert_eq!(pruned(&env.ok(&["prune"]).stdout), (3, 0));
    assert_eq!(env.unpacked_layers(data), [chains[0].clone()]);
    base.remove();
    assert_eq!(pruned(&env.ok(&["prune"]).stdout), (0, 1));
    assert!(env.blobs(data).is_empty(), "{:?}", env.blobs(data));
    assert!(env.unpacked_layers(data).is_empty());
    assert!(env.ls(data).is_empty());
    assert_eq!(pruned(&env.ok(&["prune"]).stdout), (0, 0));
    env.assert_store_sane(data);
}
