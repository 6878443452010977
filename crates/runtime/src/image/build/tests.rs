use std::fs;
use std::path::Path;

use super::*;

fn write_dir(dir: &Path, spec: &str) {
    fs::create_dir_all(dir.join("www/cgi-bin")).expect("mkdir");
    fs::write(dir.join("www/index.html"), "hi\n").expect("write");
    fs::write(dir.join("www/cgi-bin/x.cgi"), "#!/bin/sh\n").expect("write");
    fs::write(dir.join(SPEC_FILE), spec).expect("write spec");
}

const BASE: &str = r#"
from: scratch
platform: linux/amd64
files:
  - { dest: /bin/tool, content: "binary", mode: "0755" }
dirs:
  - { path: /tmp, mode: "1777" }
env: ["PATH=/bin", "A=base"]
cmd: ["sh"]
"#;

fn built(data: &Path, dir: &Path, tag: &str) -> Built {
    let store = Store::open(data).expect("store");
    let mut opts = BuildOptions::new(dir);
    opts.epoch = 0;
    opts.tags = vec![tag.parse().expect("tag")];
    build(&store, &opts).expect("build")
}

#[test]
fn the_same_input_gives_the_same_digest_in_any_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ctx");
    write_dir(&dir, BASE);
    let a = built(&tmp.path().join("data-a"), &dir, "moor.local/base:1");
    let b = built(&tmp.path().join("data-b"), &dir, "moor.local/base:1");
    assert_eq!(a, b);
    // The time is part of the input.
    let store = Store::open(&tmp.path().join("data-c")).expect("store");
    let mut opts = BuildOptions::new(&dir);
    opts.epoch = 1_700_000_000;
    let c = build(&store, &opts).expect("build");
    assert_ne!(a.manifest, c.manifest);
    assert_eq!(a.platform.to_string(), "linux/amd64");
}

#[test]
fn a_child_reuses_the_base_layers_and_overrides_its_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let base_dir = tmp.path().join("base");
    write_dir(&base_dir, BASE);
    let base = built(&data, &base_dir, "moor.local/base:1");
    let child_dir = tmp.path().join("child");
    write_dir(
        &child_dir,
        r#"
from: moor.local/base:1
platform: linux/amd64
copy:
  - { src: www, dest: /www }
entrypoint: ["/bin/httpd"]
env: { A: child, B: new }
expose: ["8080"]
labels: { role: web }
"#,
    );
    let child = built(&data, &child_dir, "moor.local/child:1");
    let store = Store::open(&data).expect("store");
    let image = store
        .image(&child.manifest, &"linux/amd64".parse().expect("platform"))
        .expect("image");
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0].blob_digest, base.layer);
    assert_eq!(image.layers[1].blob_digest, child.layer);
    let raw: Value =
        serde_json::from_slice(&store.read_blob(&child.config, 1 << 20).expect("config"))
            .expect("json");
    let cfg = &raw["config"];
    assert_eq!(cfg["Entrypoint"], json!(["/bin/httpd"]));
    assert!(
        cfg.get("Cmd").is_none(),
        "a new entrypoint drops the base's cmd"
    );
    assert_eq!(cfg["Env"], json!(["PATH=/bin", "A=child", "B=new"]));
    assert_eq!(cfg["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(cfg["Labels"], json!({"role": "web"}));
    assert_eq!(raw["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(raw["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(raw["created"], json!("1970-01-01T00:00:00Z"));
}

#[test]
fn a_missing_base_is_a_clear_error_and_nothing_is_tagged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ctx");
    write_dir(&dir, "from: moor.local/nope:1\n");
    let store = Store::open(&tmp.path().join("data")).expect("store");
    let mut opts = BuildOptions::new(&dir);
    opts.tags = vec!["moor.local/x:1".parse().expect("tag")];
    let err = build(&store, &opts).expect_err("no base");
    assert!(err.to_string().contains("moor.local/nope:1"), "{err}");
    assert!(store.references().expect("refs").is_empty());
}

#[test]
fn a_missing_source_file_names_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ctx");
    write_dir(&dir, "from: scratch\ncopy: [{src: nothere, dest: /x}]\n");
    let store = Store::open(&tmp.path().join("data")).expect("store");
    let err = build(&store, &BuildOptions::new(&dir)).expect_err("missing");
    assert!(err.to_string().contains("nothere"), "{err}");
}
