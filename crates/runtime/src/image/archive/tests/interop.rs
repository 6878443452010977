//! What `save` writes, skopeo and umoci read; what skopeo writes, `import` reads.

use std::path::Path;
use std::process::Command;

use super::{new_store, r, tagged_image};
use crate::image::archive::{import, save};
use crate::image::platform::Platform;
use crate::image::store::test_support::{is_root, require};

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn skopeo_and_umoci_read_saved_archives_and_import_reads_theirs() {
    require!(tool("skopeo"), "skopeo (Debian package skopeo)");
    require!(tool("umoci"), "umoci (Debian package umoci)");
    let (_a, store) = new_store();
    let image = tagged_image(&store, "registry.local/team/app:v1");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    save(&store, &[r("registry.local/team/app:v1")], &archive).unwrap();

    // skopeo inspect: the manifest digest is ours.
    let inspect = run(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{}", p(&archive))],
    );
    let raw: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(raw["config"]["digest"], image.config.to_string());
    let inspect = run(
        "skopeo",
        &["inspect", &format!("oci-archive:{}:v1", p(&archive))],
    );
    let info: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(info["Digest"], image.manifest.to_string());
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);

    // skopeo copy by tag into an OCI directory, then umoci unpacks it.
    let layout = dir.path().join("layout");
    run(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}:v1", p(&archive)),
            &format!("oci:{}:v1", p(&layout)),
        ],
    );
    let bundle = dir.path().join("bundle");
    let mut args = vec!["unpack"];
    if !is_root() {
        args.push("--rootless");
    }
    let image_arg = format!("{}:v1", p(&layout));
    args.extend(["--image", &image_arg, p(&bundle)]);
    run("umoci", &args);
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/os-release")).unwrap(),
        b"ID=moor-test\n"
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/app/config")).unwrap(),
        b"key=value\n"
    );

    // The skopeo-made directory imports: same manifest, named only by its tag.
    let (_b, target) = new_store();
    let imported = import(&target, &layout, &Platform::host()).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].digest, image.manifest);
    assert_eq!(imported[0].reference, None);
    assert_eq!(imported[0].ref_name.as_deref(), Some("v1"));
    assert!(target.image(&image.manifest, &Platform::host()).is_ok());

    // And so does a skopeo-made archive.
    let again = dir.path().join("again.tar");
    run(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:v1", p(&layout)),
            &format!("oci-archive:{}:registry.local/team/app:v2", p(&again)),
        ],
    );
    let (_c, third) = new_store();
    let imported = import(&third, &again, &Platform::host()).unwrap();
    assert_eq!(imported[0].digest, image.manifest);
    assert_eq!(imported[0].reference, Some(r("registry.local/team/app:v2")));
}
