//! Manifests and configs as hostile input, and choosing a platform.

use serde_json::json;

use super::*;

const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const D2: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn desc(media_type: &str, digest: &str, size: i64) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

fn image_manifest(media_type: Option<&str>) -> Value {
    let mut v = json!({
        "schemaVersion": 2,
        "config": desc(OCI_CONFIG, D1, 10),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", D2, 20)],
    });
    if let Some(t) = media_type {
        v["mediaType"] = json!(t);
    }
    v
}

fn index(entries: Vec<Value>) -> Value {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
}

fn entry(platform: &str) -> Value {
    let p: Vec<&str> = platform.split('/').collect();
    let mut plat = json!({"os": p[0], "architecture": p[1]});
    if let Some(v) = p.get(2) {
        plat["variant"] = json!(v);
    }
    let mut d = desc(OCI_MANIFEST, D1, 100);
    d["platform"] = plat;
    d
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn parsed_index(v: &Value) -> ImageIndex {
    match parse(&bytes(v), None).unwrap() {
        Parsed::Index(i) => i,
        other => panic!("{other:?}"),
    }
}

#[test]
fn oci_and_docker_manifests_and_indexes_parse() {
    for t in [None, Some(OCI_MANIFEST), Some(DOCKER_MANIFEST)] {
        let v = image_manifest(t);
        assert!(
            matches!(parse(&bytes(&v), t).unwrap(), Parsed::Image(_)),
            "{t:?}"
        );
        assert!(matches!(parse(&bytes(&v), None).unwrap(), Parsed::Image(_)));
    }
    let p = parse(&bytes(&image_manifest(None)), None).unwrap();
    assert_eq!(p.media_type(), OCI_MANIFEST);
    assert_eq!(p.children().len(), 2);
    let mut list = index(vec![entry("linux/amd64")]);
    assert!(matches!(
        parse(&bytes(&list), Some(OCI_INDEX)).unwrap(),
        Parsed::Index(_)
    ));
    list["mediaType"] = json!(DOCKER_LIST);
    let p = parse(
        &bytes(&list),
        Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
    )
    .unwrap();
    assert_eq!(p.media_type(), DOCKER_LIST);
    // A registry that only says JSON said nothing.
    assert!(parse(&bytes(&list), Some("application/json")).is_ok());
}

#[test]
fn schema_1_and_unknown_media_types_are_refused() {
    let mut v = image_manifest(None);
    v["schemaVersion"] = json!(1);
    assert!(matches!(
        parse(&bytes(&v), None),
        Err(ManifestError::SchemaV1 { .. })
    ));
    let v = image_manifest(None);
    assert!(matches!(
        parse(
            &bytes(&v),
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws")
        ),
        Err(ManifestError::SchemaV1 { .. })
    ));
    for t in ["text/html", "application/vnd.oci.artifact.manifest.v1+json"] {
        assert!(matches!(
            parse(&bytes(&image_manifest(Some(t))), None),
            Err(ManifestError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            parse(&bytes(&image_manifest(None)), Some(t)),
            Err(ManifestError::UnsupportedMediaType { .. })
        ));
    }
    for version in [json!(3), json!("2"), json!(null), json!(2.5)] {
        let mut v = image_manifest(None);
        v["schemaVersion"] = version;
        assert!(matches!(
            parse(&bytes(&v), None),
            Err(ManifestError::SchemaVersion { .. })
        ));
    }
}

#[test]
fn lying_media_types_are_refused() {
    // The registry says OCI, the document says Docker.
    assert!(matches!(
        parse(
            &bytes(&image_manifest(Some(DOCKER_MANIFEST))),
            Some(OCI_MANIFEST)
        ),
        Err(ManifestError::MediaTypeMismatch { .. })
    ));
    // An index dressed as a manifest, by its field or by the descriptor.
    let mut list = index(vec![entry("linux/amd64")]);
    list["mediaType"] = json!(OCI_MANIFEST);
    assert!(matches!(
        parse(&bytes(&list), None),
        Err(ManifestError::ShapeMismatch { .. })
    ));
    let list = index(vec![entry("linux/amd64")]);
    assert!(matches!(
        parse(&bytes(&list), Some(OCI_MANIFEST)),
        Err(ManifestError::MediaTypeMismatch { .. })
    ));
    let mut no_type = list.clone();
    no_type.as_object_mut().unwrap().remove("mediaType");
    assert!(matches!(
        parse(&bytes(&no_type), Some(DOCKER_MANIFEST)),
        Err(ManifestError::ShapeMismatch { .. })
    ));
    // Both shapes at once.
    let mut both = image_manifest(None);
    both["manifests"] = json!([]);
    assert!(matches!(
        parse(&bytes(&both), None),
        Err(ManifestError::Ambiguous)
    ));
    assert!(matches!(
        parse(br#"{"schemaVersion":2}"#, None),
        Err(ManifestError::UnknownShape)
    ));
}

#[test]
fn oversized_non_utf8_and_deep_documents_are_refused() {
    let mut v = image_manifest(None);
    v["annotations"] = json!({"pad": "x".repeat(MAX_MANIFEST_BYTES as usize)});
    assert!(matches!(
        parse(&bytes(&v), None),
        Err(ManifestError::TooLarge { .. })
    ));
    assert!(matches!(
        parse(b"{\"a\":\"\xff\"}", None),
        Err(ManifestError::NotUtf8 { .. })
    ));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        parse(deep.as_bytes(), None),
        Err(ManifestError::TooDeep { .. })
    ));
    // Brackets inside strings do not count.
    let mut v = image_manifest(None);
    v["annotations"] = json!({"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"});
    assert!(parse(&bytes(&v), None).is_ok());
    assert!(matches!(
        parse(b"[1,2]", None),
        Err(ManifestError::BadField { .. })
    ));
    assert!(matches!(parse(b"{", None), Err(ManifestError::Json { .. })));
}

#[test]
fn descriptors_with_bad_digests_or_sizes_are_refused() {
    for bad in [
        "sha256:../../x",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "md5:abc",
        "",
    ] {
        let mut v = image_manifest(None);
        v["layers"][0]["digest"] = json!(bad);
        match parse(&bytes(&v), None) {
            Err(ManifestError::BadDigest { field, .. }) => assert_eq!(field, "layers[0].digest"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for bad in [
        json!(-1),
        json!(1.5),
        json!("10"),
        json!(MAX_BLOB_SIZE + 1),
        json!(u64::MAX),
        json!(null),
    ] {
        let mut v = image_manifest(None);
        v["config"]["size"] = bad.clone();
        match parse(&bytes(&v), None) {
            Err(ManifestError::BadSize { field, .. }) => assert_eq!(field, "config.size"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let mut v = image_manifest(None);
    v["layers"][0]["mediaType"] = json!(7);
    assert!(matches!(
        parse(&bytes(&v), None),
        Err(ManifestError::BadField { .. })
    ));
    let mut v = index(vec![entry("linux/amd64")]);
    v["manifests"][0]["digest"] = json!("sha256:../../etc/passwd");
    assert!(matches!(
        parse(&bytes(&v), None),
        Err(ManifestError::BadDigest { .. })
    ));
    let layers: Vec<Value> = (0..=MAX_LAYERS)
        .map(|_| desc("application/vnd.oci.image.layer.v1.tar", D2, 1))
        .collect();
    let mut v = image_manifest(None);
    v["layers"] = json!(layers);
    assert!(matches!(
        parse(&bytes(&v), None),
        Err(ManifestError::TooMany { .. })
    ));
}

#[test]
fn select_takes_the_best_rank_and_the_first_of_equals() {
    let list = index(vec![
        entry("linux/arm/v6"),
        entry("linux/arm64/v8"),
        entry("linux/arm/v7"),
        entry("linux/amd64"),
        entry("linux/amd64"),
    ]);
    let mut v = list.clone();
    for (i, d) in [D1, D2, D1, D2, D1].iter().enumerate() {
        v["manifests"][i]["digest"] = json!(d);
        v["manifests"][i]["size"] = json!(i);
    }
    let i = parsed_index(&v);
    let p = |s: &str| s.parse::<Platform>().unwrap();
    assert_eq!(select(&i, &p("linux/arm/v7")).unwrap().size(), 2);
    assert_eq!(select(&i, &p("linux/arm/v6")).unwrap().size(), 0);
    assert_eq!(select(&i, &p("linux/arm64")).unwrap().size(), 1);
    assert_eq!(select(&i, &p("linux/amd64")).unwrap().size(), 3);
}

#[test]
fn select_skips_attestations_and_names_what_is_available() {
    let mut attest = entry("unknown/unknown");
    attest["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
    let mut annotated = entry("linux/amd64");
    annotated["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest"});
    let i = parsed_index(&index(vec![attest, annotated, entry("linux/arm64")]));
    match select(&i, &"linux/amd64".parse().unwrap()) {
        Err(ManifestError::NoMatchingPlatform { wanted, available }) => {
            assert_eq!(wanted, "linux/amd64");
            assert_eq!(available, vec!["linux/arm64"]);
        }
        other => panic!("{other:?}"),
    }
    // An entry without a platform is taken only when nothing better matches.
    let mut bare = desc(OCI_MANIFEST, D2, 7);
    bare.as_object_mut().unwrap().remove("platform");
    let i = parsed_index(&index(vec![bare.clone(), entry("linux/amd64")]));
    assert_eq!(
        select(&i, &"linux/amd64".parse().unwrap()).unwrap().size(),
        100
    );
    let i = parsed_index(&index(vec![bare]));
    assert_eq!(
        select(&i, &"linux/amd64".parse().unwrap()).unwrap().size(),
        7
    );
    let i = parsed_index(&index(vec![]));
    assert!(select(&i, &"linux/amd64".parse().unwrap()).is_err());
}

#[test]
fn chain_ids_follow_the_oci_definition() {
    let d1: Digest = D1.parse().unwrap();
    let d2: Digest = D2.parse().unwrap();
    assert!(chain_ids(&[]).is_empty());
    let c = chain_ids(&[d1.clone(), d2.clone(), d1.clone()]);
    assert_eq!(c[0], d1);
    assert_eq!(c[1], Digest::sha256(format!("{d1} {d2}").as_bytes()));
    assert_eq!(c[2], Digest::sha256(format!("{} {d1}", c[1]).as_bytes()));
}

#[test]
fn configs_parse_with_docker_quirks_and_checks() {
    let docker = json!({
        "architecture": "arm", "variant": "v7", "os": "linux",
        "created": "2024-05-01T00:00:00.123456789Z",
        "config": {"Env": null, "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}, "Volumes": null,
                   "Labels": {"a": "b"}, "WorkingDir": ""},
        "container_config": {"Hostname": "x"},
        "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
        "history": [{"created_by": "a", "empty_layer": true}, {"created_by": "b"}],
    });
    let c = parse_config(&bytes(&docker)).unwrap();
    assert_eq!(c.diff_ids.len(), 2);
    assert_eq!(config_platform(&c.config), "linux/arm/v7".parse().unwrap());

    let mut v = docker.clone();
    v["rootfs"]["type"] = json!("tarballs");
    assert!(matches!(
        parse_config(&bytes(&v)),
        Err(ManifestError::RootfsType { .. })
    ));
    let mut v = docker.clone();
    v["rootfs"]["diff_ids"][1] = json!("sha256:../../x");
    match parse_config(&bytes(&v)) {
        Err(ManifestError::BadDigest { field, .. }) => assert_eq!(field, "rootfs.diff_ids[1]"),
        other => panic!("{other:?}"),
    }
    let mut v = docker.clone();
    v.as_object_mut().unwrap().remove("rootfs");
    assert!(matches!(
        parse_config(&bytes(&v)),
        Err(ManifestError::Decode { .. })
    ));
    let huge = vec![b' '; MAX_CONFIG_BYTES as usize + 1];
    assert!(matches!(
        parse_config(&huge),
        Err(ManifestError::TooLarge { .. })
    ));

    let m = match parse(&bytes(&image_manifest(None)), None).unwrap() {
        Parsed::Image(m) => m,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        check_layer_count(&m, &c),
        Err(ManifestError::LayerCount {
            layers: 1,
            diff_ids: 2
        })
    ));
}
