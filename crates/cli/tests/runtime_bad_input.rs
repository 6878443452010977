//! `moor runtime` given what it must refuse: malformed or unsupported `config.json`,
//! broken bundles, bad ids, verbs in the wrong state, bad signals and descriptors, and a
//! corrupt state file. Each refusal must name the problem, exit non-zero without a panic
//! (a panic exits 101, an abort dies by signal), and leave nothing behind: no state
//! directory, no cgroup, no process, no file on the host outside the bundle.
//!
//! A corrupt `state.json` makes every verb fail with an error naming the file, except
//! `delete --force`, which kills what it can still find of the container and removes
//! its directory, so that a user can always get rid of it.

#[path = "common/lifecycle_util.rs"]
mod lifecycle_util;

use std::path::PathBuf;

use lifecycle_util::{DEADLINE, Env, assert_clean_failure, dir};
use serde_json::{Value, json};
use tests::bundle::Bundle;
use tests::moor::Ran;
use tests::{host, wait};

/// What a refusal must not touch: every path in the scratch directory outside the
/// bundle and the runtime root.
fn host_files(env: &Env, bundle: &Bundle) -> Vec<PathBuf> {
    host::tree(env.scratch.dir(), &[env.moor.root(), &bundle.dir])
}

/// Runs `create` of `bundle` as `id`, which must be refused saying `needle`, and checks
/// that nothing was left behind.
fn assert_create_refused(env: &Env, bundle: &Bundle, name: &str, id: &str, needle: &str) -> Ran {
    let before = host_files(env, bundle);
    let ran = env.moor.run(&["create", "--bundle", dir(bundle), id]);
    assert_clean_failure(&ran, needle, &format!("create ({name})"));
    assert_nothing_left(env, bundle, name, id);
    assert_eq!(
        host_files(env, bundle),
        before,
        "{name}: files changed on the host"
    );
    ran
}

/// No state directory, cgroup or process of `id` (made from bundle `name`) is left.
fn assert_nothing_left(env: &Env, bundle: &Bundle, name: &str, id: &str) {
    let state_dir = env.moor.root().join(id);
    assert!(
        !state_dir.exists(),
        "{name}: {} is left",
        state_dir.display()
    );
    let groups = host::cgroup_dirs(&env.group(&bundle_name(bundle)));
    assert!(groups.is_empty(), "{name}: cgroups left: {groups:?}");
    // A container init runs the runtime's code until it execs, with the id in its
    // command line.
    let procs = host::processes_mentioning(&format!("\0{id}\0"));
    assert!(procs.is_empty(), "{name}: processes left: {procs:?}");
}

fn bundle_name(bundle: &Bundle) -> String {
    bundle
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes `bytes` as the bundle's config.json.
fn write_config(bundle: &Bundle, bytes: &[u8]) {
    std::fs::write(bundle.dir.join("config.json"), bytes).expect("write config.json");
}

#[test]
fn malformed_json_is_refused_by_what_is_wrong() {
    let Some(env) = Env::new("bad-json") else {
        return;
    };
    let bundle = env.bundle("c", &["true"]);
    let mut huge = br#"{"ociVersion": "1.0.2", "annotations": {"x": ""#.to_vec();
    huge.resize(5 << 20, b'x');
    huge.extend_from_slice(br#""}}"#);
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("deep", vec![b'['; 100_000], "recursion limit exceeded"),
        (
            "utf8",
            b"{\"ociVersion\": \"1.0.2\xff\xfe\"}".to_vec(),
            "invalid json",
        ),
        ("empty", Vec::new(), "EOF while parsing"),
        ("null", b"null".to_vec(), "invalid type: null"),
        ("huge", huge, "is more than the limit of 4194304 bytes"),
        (
            "truncated",
            b"{\"ociVersion\": \"1.0.2\", \"process\": {".to_vec(),
            "invalid json",
        ),
    ];
    for (name, bytes, needle) in cases {
        write_config(&bundle, &bytes);
        let id = env.scratch.name(name);
        let ran = assert_create_refused(&env, &bundle, name, &id, needle);
        assert!(
            ran.stderr.contains("config.json"),
            "{name}: names no file: {}",
            ran.stderr
        );
        // Also refused by run, which creates the same way.
        let ran = env.moor.run(&["run", "--bundle", dir(&bundle), &id]);
        assert_clean_failure(&ran, needle, &format!("run ({name})"));
        assert_nothing_left(&env, &bundle, name, &id);
    }
}

#[test]
fn invalid_fields_are_refused_naming_the_field() {
    let Some(env) = Env::new("bad-fields") else {
        return;
    };
    let mut bundle = env.bundle("c", &["true"]);
    let good = bundle.config.clone();
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 17] = [
        (
            "namespace",
            |c| c["linux"]["namespaces"][0] = json!({"type": "galaxy"}),
            r#"linux.namespaces[0].type: expected a namespace type"#,
        ),
        (
            "sysctl-dotdot",
            |c| c["linux"]["sysctl"] = json!({"net/../../kernel/x": "1"}),
            r#"linux.sysctl["net/../../kernel/x"]"#,
        ),
        (
            "sysctl-host",
            |c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}),
            "sysctl vm.swappiness is not namespaced",
        ),
        (
            "rlimit-negative",
            |c| c["process"]["rlimits"][0]["soft"] = json!(-1),
            "process.rlimits[0].soft: expected a non-negative integer",
        ),
        (
            "rlimit-soft",
            |c| {
                c["process"]["rlimits"][0] =
                    json!({"type": "RLIMIT_NOFILE", "soft": 100, "hard": 10})
            },
            "process.rlimits[0]: soft limit 100 is above the hard limit 10",
        ),
        (
            "hostname-slash",
            |c| c["hostname"] = json!("a/b"),
            "hostname: expected a name",
        ),
        (
            "hostname-long",
            |c| c["hostname"] = json!("h".repeat(65)),
            "hostname: expected a name of at most 64 bytes",
        ),
        (
            "mount-relative",
            |c| c["mounts"][0]["destination"] = json!("proc"),
            "mounts[0].destination: expected an absolute path",
        ),
        (
            "capability",
            |c| c["process"]["capabilities"]["bounding"][0] = json!("CAP_FLY"),
            r#"unknown capability "CAP_FLY""#,
        ),
        (
            "hooks",
            |c| c["hooks"] = json!({"prestart": [{"path": "/bin/true"}]}),
            "hooks: not supported by this version of moor",
        ),
        (
            "seccomp",
            |c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"}),
            "linux.seccomp: not supported by this version of moor",
        ),
        (
            "userns",
            |c| c["linux"]["namespaces"][0] = json!({"type": "user"}),
            "the user namespace is not supported by this version of moor",
        ),
        (
            "oci-version",
            |c| c["ociVersion"] = json!("2.0.0"),
            r#"ociVersion: expected a 1.x.y runtime specification version, found "2.0.0""#,
        ),
        (
            "no-process",
            |c| {
                c.as_object_mut().map(|o| o.remove("process"));
            },
            "process: missing",
        ),
        (
            "no-args",
            |c| c["process"]["args"] = json!([]),
            "process.args: missing",
        ),
        (
            "no-mount-namespace",
            |c| c["linux"]["namespaces"] = json!([{"type": "pid"}]),
            "linux.namespaces: a mount namespace is required",
        ),
        (
            "uid-type",
            |c| c["process"]["user"]["uid"] = json!("root"),
            "process.user.uid: invalid type",
        ),
    ];
    for (name, edit, needle) in cases {
        bundle.config = good.clone();
        edit(&mut bundle.config);
        bundle.save();
        let id = env.scratch.name(name);
        assert_create_refused(&env, &bundle, name, &id, needle);
    }
}

#[test]
fn broken_bundles_are_refused() {
    let Some(env) = Env::new("bad-bundle") else {
        return;
    };

    let bundle = env.bundle("no-rootfs", &["true"]);
    std::fs::remove_dir_all(&bundle.rootfs).expect("remove rootfs");
    let id = env.scratch.name("no-rootfs");
    assert_create_refused(&env, &bundle, "no-rootfs", &id, "does not exist");

    let bundle = env.bundle("file-rootfs", &["true"]);
    std::fs::remove_dir_all(&bundle.rootfs).expect("remove rootfs");
    std::fs::write(&bundle.rootfs, "not a directory").expect("write rootfs file");
    let id = env.scratch.name("file-rootfs");
    assert_create_refused(&env, &bundle, "file-rootfs", &id, "is not a directory");

    let bundle = env.bundle("config-dir", &["true"]);
    let config = bundle.dir.join("config.json");
    std::fs::remove_file(&config).expect("remove config.json");
    std::fs::create_dir(&config).expect("config.json as a directory");
    let id = env.scratch.name("config-dir");
    assert_create_refused(&env, &bundle, "config-dir", &id, "expected a regular file");

    let bundle = env.bundle("gone", &["true"]);
    std::fs::remove_dir_all(&bundle.dir).expect("remove the bundle");
    let id = env.scratch.name("gone");
    let ran = assert_create_refused(&env, &bundle, "gone", &id, "No such file or directory");
    assert!(
        ran.stderr.contains(dir(&bundle)),
        "names no path: {}",
        ran.stderr
    );
    assert_eq!(
        ran.stderr.matches("No such file or directory").count(),
        1,
        "the cause is repeated: {}",
        ran.stderr
    );
    assert!(!bundle.dir.exists(), "the missing bundle was created");
}

#[test]
fn a_missing_program_or_bind_source_is_refused() {
    let Some(env) = Env::new("bad-program") else {
        return;
    };
    let bundle = env.bundle("nope", &["nope"]);
    let id = env.scratch.name("nope");
    assert_create_refused(
        &env,
        &bundle,
        "nope",
        &id,
        r#"exec "nope": executable file not found in $PATH"#,
    );
    let ran = env.moor.run(&["run", "--bundle", dir(&bundle), &id]);
    assert_clean_failure(&ran, "executable file not found in $PATH", "run nope");
    assert_nothing_left(&env, &bundle, "nope", &id);

    let bundle = env.bundle("abs", &["/bin/nope"]);
    let id = env.scratch.name("abs");
    assert_create_refused(&env, &bundle, "abs", &id, r#"exec "/bin/nope": no such"#);

    let mut bundle = env.bundle("cwd", &["true"]);
    bundle.set("/process/cwd", json!("/nowhere"));
    bundle.save();
    let id = env.scratch.name("cwd");
    assert_create_refused(&env, &bundle, "cwd", &id, "working directory /nowhere");

    let mut bundle = env.bundle("bind", &["true"]);
    let source = env.path("no-such-source");
    let source_text = source.to_str().expect("utf-8").to_string();
    bundle.push(
        "/mounts",
        json!({"destination": "/data", "type": "bind", "source": source_text,
               "options": ["rbind", "ro"]}),
    );
    bundle.save();
    let id = env.scratch.name("bind");
    let ran = assert_create_refused(&env, &bundle, "bind", &id, &source_text);
    assert!(ran.stderr.contains("/data"), "{}", ran.stderr);
    assert!(!source.exists(), "the missing bind source was created");
}

#[test]
fn an_id_in_use_is_refused_and_the_first_container_is_untouched() {
    let Some(env) = Env::new("id-in-use") else {
        return;
    };
    let bundle = env.bundle("c", &["true"]);
    let id = env.scratch.name("c");
    env.create(&bundle, &id);
    let pid = env.pid(&id);
    let state_before = env.moor.state(&id);

    for verb in ["create", "run"] {
        let ran = env.moor.run(&[verb, "--bundle", dir(&bundle), &id]);
        assert_clean_failure(&ran, "is already in use", verb);
    }
    assert_eq!(env.moor.state(&id), state_before);
    assert!(host::alive(pid));
    assert!(
        !host::cgroup_dirs(&env.group("c")).is_empty(),
        "the first container's cgroup went"
    );
    env.moor.ok(&["start", &id]);
    env.wait_status(&id, "stopped");
    env.moor.ok(&["delete", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn invalid_ids_are_refused_by_every_verb() {
    let Some(env) = Env::new("bad-ids") else {
        return;
    };
    let bundle = env.bundle("c", &["true"]);
    let long = "x".repeat(2000);
    let before = host_files(&env, &bundle);
    for id in ["../x", "a/b", "", ".hidden", "..", long.as_str()] {
        let ran = env.moor.run(&["create", "--bundle", dir(&bundle), id]);
        assert_clean_failure(&ran, "invalid container id", &format!("create {id:?}"));
        assert!(host::cgroup_dirs(&env.group("c")).is_empty());
        for verb in [
            &["state"][..],
            &["start"],
            &["delete", "--force"],
            &["kill"],
            &["pause"],
        ] {
            let mut args = verb.to_vec();
            args.push(id);
            let ran = env.moor.run(&args);
            assert_clean_failure(&ran, "invalid container id", &format!("{args:?}"));
        }
    }
    assert_eq!(host_files(&env, &bundle), before);
    let root_entries = std::fs::read_dir(env.moor.root())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(root_entries, 0, "something was made in the runtime root");
}

#[test]
fn unknown_ids_are_refused_by_every_verb() {
    let Some(env) = Env::new("unknown-ids") else {
        return;
    };
    let id = env.scratch.name("ghost");
    for args in [
        &["start", &id][..],
        &["state", &id],
        &["kill", &id],
        &["kill", &id, "KILL"],
        &["delete", &id],
        &["pause", &id],
        &["resume", &id],
        &["exec", &id, "true"],
    ] {
        let ran = env.moor.run(args);
        assert_clean_failure(
            &ran,
            &format!("container {id:?} does not exist"),
            &args.join(" "),
        );
    }
    assert!(!env.moor.root().join(&id).exists());
}

#[test]
fn verbs_in_the_wrong_state_are_refused_and_change_nothing() {
    let Some(env) = Env::new("wrong-state") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    let refused = |args: &[&str], needle: &str| {
        let ran = env.moor.run(args);
        assert_clean_failure(&ran, needle, &args.join(" "));
    };

    env.create(&bundle, &id);
    refused(&["pause", &id], "is created: cannot pause it");
    refused(&["resume", &id], "is created: cannot resume it");
    assert_eq!(env.moor.status(&id), "created");

    env.moor.ok(&["start", &id]);
    refused(&["start", &id], "is running: cannot start it");
    refused(&["resume", &id], "is running: cannot resume it");
    assert_eq!(env.moor.status(&id), "running");

    env.moor.ok(&["pause", &id]);
    refused(&["pause", &id], "is paused: cannot pause it");
    refused(&["start", &id], "is paused: cannot start it");
    refused(&["exec", &id, "true"], "is paused: cannot exec in it");
    env.moor.ok(&["resume", &id]);

    env.moor.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    refused(&["start", &id], "is stopped: cannot start it");
    refused(&["pause", &id], "is stopped: cannot pause it");
    refused(&["resume", &id], "is stopped: cannot resume it");
    refused(&["exec", &id, "true"], "is stopped: cannot exec in it");
    refused(&["kill", &id], "is stopped: cannot kill it");
    refused(&["kill", &id, "KILL"], "is stopped: cannot kill it");
    assert_eq!(env.moor.status(&id), "stopped");
    env.moor.ok(&["delete", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn bad_signals_and_descriptors_are_refused() {
    let Some(env) = Env::new("bad-signals") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    let pid = env.pid(&id);
    for signal in ["NOPE", "SIGNOPE", "0", "65", "", "9x"] {
        let ran = env.moor.run(&["kill", &id, signal]);
        assert_clean_failure(&ran, "unknown signal", &format!("kill {signal:?}"));
    }
    assert_eq!(env.moor.status(&id), "running");
    assert!(host::alive(pid));

    // No descriptor above 2 is open in moor (the test's are close-on-exec).
    let other = env.bundle("fds", &["true"]);
    let fds_id = env.scratch.name("fds");
    for verb in ["create", "run"] {
        let args = [
            verb,
            "--preserve-fds",
            "5",
            "--bundle",
            dir(&other),
            &fds_id,
        ];
        let ran = env.moor.run(&args);
        assert_clean_failure(&ran, "--preserve-fds 5: descriptor", verb);
        assert!(ran.stderr.contains("is not open"), "{}", ran.stderr);
        assert_nothing_left(&env, &other, "fds", &fds_id);
    }
    let ran = env.moor.run(&["exec", "--preserve-fds", "5", &id, "true"]);
    assert_clean_failure(&ran, "--preserve-fds 5: descriptor", "exec");
    let ran = env.moor.run(&["exec", "--tty", "--detach", &id, "sh"]);
    assert_clean_failure(&ran, "no --console-socket was given", "exec --tty --detach");
    let ran = env
        .moor
        .run(&["exec", "--console-socket", "/nowhere.sock", &id, "true"]);
    assert_clean_failure(&ran, "--console-socket given but", "exec --console-socket");
    env.moor.ok(&["delete", "--force", &id]);
}

#[test]
fn containers_sharing_a_cgroups_path_can_all_be_deleted() {
    let Some(env) = Env::new("shared-cgroup") else {
        return;
    };
    // Both from one bundle, so both name the same linux.cgroupsPath: deleting the first
    // kills everything in that group (the second's init is born in it) and removes the
    // group the second was recorded with.
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let (first, second) = (env.scratch.name("first"), env.scratch.name("second"));
    env.create(&bundle, &first);
    env.create(&bundle, &second);
    let pids = [env.pid(&first), env.pid(&second)];
    env.moor.ok(&["delete", &first]);
    assert!(host::cgroup_dirs(&env.group("c")).is_empty());
    assert_eq!(env.moor.status(&second), "stopped");
    env.moor.ok(&["delete", &second]);
    wait::wait_until("both inits to die", DEADLINE, || {
        pids.iter().all(|p| !host::alive(*p))
    });
    assert!(env.listed().is_empty());
    assert!(!env.moor.root().join(&second).exists());
}

/// Replaces a container's state file with garbage.
fn corrupt(env: &Env, id: &str) {
    let path = env.moor.root().join(id).join("state.json");
    assert!(path.exists(), "{} is missing", path.display());
    std::fs::write(&path, "{\"version\": 1, \"id\": tr").expect("corrupt state.json");
}

/// Every verb but `delete --force` fails naming the corrupt file; `list` leaves it out.
fn assert_corrupt_is_refused(env: &Env, id: &str) {
    let path = env.moor.root().join(id).join("state.json");
    let needle = format!("state file {} is corrupt", path.display());
    for args in [
        &["state", id][..],
        &["delete", id],
        &["start", id],
        &["kill", id, "KILL"],
        &["pause", id],
        &["resume", id],
        &["exec", id, "true"],
    ] {
        let ran = env.moor.run(args);
        assert_clean_failure(&ran, &needle, &args.join(" "));
    }
    let listed = env.moor.ok(&["list", "--format", "json"]);
    let listed: Value = serde_json::from_str(&listed.stdout).expect("list json");
    assert_eq!(listed, json!([]), "a corrupt container is listed");
}

#[test]
fn a_corrupt_state_file_is_an_error_and_delete_force_removes_the_container() {
    let Some(env) = Env::new("corrupt") else {
        return;
    };

    // Created: the init waits at the start line, outside its cgroup.
    let (bundle, out) = env.bundle_with_out("created", &["sh", "-c", "echo ran > /out/marker"]);
    let id = env.scratch.name("created");
    env.create(&bundle, &id);
    let pid = env.pid(&id);
    corrupt(&env, &id);
    assert_corrupt_is_refused(&env, &id);
    assert!(host::alive(pid), "a refused verb killed the init");
    env.moor.ok(&["delete", "--force", &id]);
    wait::wait_until("the created init to die", DEADLINE, || !host::alive(pid));
    assert!(!out.join("marker").exists(), "the program ran");
    env.assert_gone(&id, "created");

    // Running: the program is in the cgroup.
    let bundle = env.bundle("running", &["sleep", "1000"]);
    let id = env.scratch.name("running");
    env.run_detached(&bundle, &id);
    let pid = env.pid(&id);
    corrupt(&env, &id);
    assert_corrupt_is_refused(&env, &id);
    env.moor.ok(&["delete", "--force", &id]);
    wait::wait_until("the running init to die", DEADLINE, || !host::alive(pid));
    env.assert_gone(&id, "running");

    // The id can be used again.
    env.create(&bundle, &id);
    env.moor.ok(&["delete", &id]);
}
