//! Backups as real processes: `moor backup save` from a running controller, then `moor
//! backup restore` into a new data directory and a new controller on another port that
//! serves the same objects (same uid, resourceVersion, creationTimestamp) and tokens, and
//! goes on from the backed-up revision. An agent certificate cannot take a backup; a
//! missing or wrong passphrase and a damaged file are clear errors that leave nothing
//! behind.

#[path = "common/cluster_util.rs"]
mod cluster_util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cluster_util::Site;
use tests::daemon::{Daemon, free_local_addr};
use tests::moor::Ran;
use tests::wait;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/fixtures");
const DEADLINE: Duration = Duration::from_secs(30);
const PASSPHRASE: &str = "a long passphrase for the test backup";

struct Lab {
    site: Site,
}

impl Lab {
    fn dir(&self) -> &Path {
        self.site.dir()
    }

    /// `moor --data-dir DATA controller EXTRA…` with HOME at `home`.
    fn controller(&self, data: &Path, home: &Path, extra: &[&str], log: &str) -> Daemon {
        let mut cmd = self.site.controller_command(data, extra);
        Daemon::spawn(cmd.env("HOME", home), &self.dir().join(log))
    }

    /// `moor ARGS` with `envs`, without any passphrase or config from the environment.
    fn moor(&self, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Ran {
        let mut cmd = self.site.command(args);
        cmd.envs(envs.iter().copied());
        cluster_util::run(
            &mut cmd,
            stdin.map(str::as_bytes),
            &format!("moor {}", args.join(" ")),
        )
    }

    fn ok(&self, args: &[&str], envs: &[(&str, &str)], controller: &Daemon) -> String {
        let ran = self.moor(args, envs, None);
        cluster_util::stdout_of_success(
            &format!("moor {}", args.join(" ")),
            ran,
            &format!("controller log:\n{}", controller.log()),
        )
    }

    fn fails(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let ran = self.moor(args, envs, None);
        assert_eq!(
            ran.code(),
            Some(1),
            "moor {} should fail: {}\n{}",
            args.join(" "),
            ran.stdout,
            ran.stderr
        );
        ran.stderr
    }
}

/// The `resourceVersion` in `moor get -o yaml` output.
fn resource_version(yaml: &str) -> u64 {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("resourceVersion:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {yaml}"))
}

/// An agent credential file for `name`, signed by the cluster CA in `data`.
fn agent_config(data: &Path, name: &str, out: &Path) {
    let ca = wire::ClusterCa::load(&data.join("pki")).expect("load the CA");
    let node = ca
        .issue(
            wire::Role::Agent,
            name,
            SystemTime::now(),
            Duration::from_secs(3600),
        )
        .expect("issue");
    let admin = wire::ClientConfig::load(&data.join("admin.conf")).expect("admin.conf");
    wire::ClientConfig {
        controllers: admin.controllers,
        ca: ca.cert().clone(),
        identity: node.identity().expect("identity"),
        node,
    }
    .save(out)
    .expect("save agent config");
}

const OBJECTS: &str = "apiVersion: v1
kind: Namespace
metadata: {name: edge}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: site, namespace: edge}
data: {region: north}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: tuning}
data: {threads: '4'}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: edge}
type: Opaque
data: {password: c2VjcmV0}
";

#[test]
fn a_restored_cluster_serves_the_same_objects_and_goes_on_from_their_revision() {
    let lab = Lab {
        site: Site::new("cluster-backup"),
    };
    let home = lab.site.home.clone();
    let old_data = lab.dir().join("old");
    let old_listen = free_local_addr();
    let old = lab.controller(
        &old_data,
        &home,
        &["--init", "--name", "ctl-1", "--listen", &old_listen],
        "old.log",
    );
    wait::wait_until("the first controller to answer", DEADLINE, || {
        lab.moor(&["get", "namespaces"], &[], None).status.success()
    });
    let deploy = Path::new(FIXTURES)
        .join("nginx-deployment.yaml")
        .display()
        .to_string();
    lab.ok(&["apply", "-f", &deploy], &[], &old);
    let applied = lab.moor(&["apply", "-f", "-"], &[], Some(OBJECTS));
    assert!(applied.status.success(), "{}", applied.stderr);
    let token = lab.ok(&["token", "create", "--role", "agent"], &[], &old);
    let tokens_before = lab.ok(&["token", "ls"], &[], &old);
    assert!(tokens_before.lines().count() == 2, "{tokens_before}");
    let gets: [&[&str]; 4] = [
        &["get", "deploy", "nginx-deployment", "-o", "yaml"],
        &["get", "cm", "site", "-n", "edge", "-o", "yaml"],
        &["get", "cm", "tuning", "-o", "yaml"],
        &["get", "secret", "db", "-n", "edge", "-o", "yaml"],
    ];
    let before: Vec<String> = gets.iter().map(|args| lab.ok(args, &[], &old)).collect();
    let newest = before
        .iter()
        .map(|y| resource_version(y))
        .max()
        .unwrap_or(0);

    // Save, with the passphrase from a file.
    let pass_file = lab.dir().join("passphrase");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).expect("write passphrase");
    let backups = lab.dir().join("backups");
    std::fs::create_dir_all(&backups).expect("mkdir backups");
    let file = backups.join("cluster.backup");
    let file_arg = file.display().to_string();
    let pass_arg = pass_file.display().to_string();
    let saved = lab.ok(
        &["backup", "save", &file_arg, "--passphrase-file", &pass_arg],
        &[],
        &old,
    );
    assert!(saved.contains("written to"), "{saved}");
    let mode = std::fs::metadata(&file)
        .expect("backup")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_dir(&backups).expect("ls").count(),
        1,
        "a temporary file was left behind"
    );
    let bytes = std::fs::read(&file).expect("read backup");
    assert!(bytes.starts_with(b"MOORBKUP"));
    assert!(
        !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
        "the CA key is in the clear"
    );

    // Refusals: no passphrase, an agent certificate.
    let other = backups.join("other.backup").display().to_string();
    let err = lab.fails(&["backup", "save", &other], &[]);
    assert!(
        err.contains("--passphrase-file PATH or $MOOR_BACKUP_PASSPHRASE"),
        "{err}"
    );
    let agent = lab.dir().join("agent.conf");
    agent_config(&old_data, "edge-1", &agent);
    let agent_arg = agent.display().to_string();
    let err = lab.fails(
        &["--config", &agent_arg, "backup", "save", &other],
        &[("MOOR_BACKUP_PASSPHRASE", PASSPHRASE)],
    );
    assert!(err.contains("agent edge-1 may not take a backup"), "{err}");
    assert_eq!(std::fs::read_dir(&backups).expect("ls").count(), 1);
    drop(old);

    // Restore: a wrong passphrase and a damaged file leave nothing; the right one works.
    let new_data = lab.dir().join("new");
    let new_data_arg = new_data.display().to_string();
    let new_listen = free_local_addr();
    let new_home = lab.dir().join("new-home");
    let new_home_arg = new_home.display().to_string();
    let restore = |file: &str, pass: &str| {
        lab.moor(
            &[
                "--data-dir",
                &new_data_arg,
                "backup",
                "restore",
                file,
                "--name",
                "ctl-r",
                "--listen",
                &new_listen,
            ],
            &[("MOOR_BACKUP_PASSPHRASE", pass), ("HOME", &new_home_arg)],
            None,
        )
    };
    let wrong = restore(&file_arg, "not the passphrase");
    assert_eq!(wrong.code(), Some(1), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("wrong passphrase"),
        "{}",
        wrong.stderr
    );
    assert!(
        !new_data.exists(),
        "a failed restore wrote {}",
        new_data.display()
    );
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let damaged_file = lab.dir().join("damaged.backup");
    std::fs::write(&damaged_file, &damaged).expect("write");
    let ran = restore(&damaged_file.display().to_string(), PASSPHRASE);
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("does not authenticate"),
        "{}",
        ran.stderr
    );
    assert!(!new_data.exists());

    let ran = restore(&file_arg, PASSPHRASE);
    assert!(ran.status.success(), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("start it with"), "{}", ran.stdout);
    assert!(new_home.join(".moor/config").is_file());
    let again = restore(&file_arg, PASSPHRASE);
    assert_eq!(again.code(), Some(1));
    assert!(
        again.stderr.contains("already holds a controller"),
        "{}",
        again.stderr
    );

    let new = lab.controller(&new_data, &new_home, &[], "new.log");
    let conf = new_data.join("admin.conf").display().to_string();
    let as_new = |args: &[&str]| {
        let mut all = vec!["--config", conf.as_str()];
        all.extend_from_slice(args);
        lab.ok(&all, &[], &new)
    };
    wait::wait_until("the restored controller to answer", DEADLINE, || {
        lab.moor(&["--config", &conf, "get", "namespaces"], &[], None)
            .status
            .success()
    });
    for (args, yaml) in gets.iter().zip(&before) {
        assert_eq!(&as_new(args), yaml, "{args:?}");
    }
    // ID, role, expiry and uses left (not the "in …" part, which moves with the clock).
    let token_fields = |table: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let mut kept: Vec<String> = fields.iter().take(3).map(|f| f.to_string()).collect();
                kept.extend(fields.last().map(|f| f.to_string()));
                kept
            })
            .collect()
    };
    assert_eq!(
        token_fields(&as_new(&["token", "ls"])),
        token_fields(&tokens_before)
    );
    assert!(!token.trim().is_empty());

    // The revision goes on from the backup's.
    let added = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\ndata: {k: v}\n";
    let ran = lab.moor(&["--config", &conf, "apply", "-f", "-"], &[], Some(added));
    assert!(ran.status.success(), "{}\n{}", ran.stderr, new.log());
    let after = resource_version(&as_new(&["get", "cm", "after", "-o", "yaml"]));
    assert!(after > newest, "new write at {after}, backup had {newest}");

    // A controller joins the restored one and gets the restored state (as a snapshot:
    // the new group's log does not go back to the restored objects). It takes the old
    // first controller's name.
    let join_token = as_new(&["token", "create", "--role", "controller"]);
    let joined_data = lab.dir().join("joined");
    let joined_listen = free_local_addr();
    let joined = lab.controller(
        &joined_data,
        &new_home,
        &[
            "--join",
            join_token.trim(),
            "--server",
            &new_listen,
            "--name",
            "ctl-1",
            "--listen",
            &joined_listen,
        ],
        "joined.log",
    );
    let joined_conf = lab.dir().join("joined.conf");
    let joined_addr = joined_listen.parse().expect("address");
    cluster_util::save_config(
        &new_data.join("admin.conf"),
        &[("ctl-1", joined_addr)],
        &joined_conf,
    );
    let joined_conf = joined_conf.display().to_string();
    wait::wait_until("two voters in the restored group", DEADLINE, || {
        let ran = lab.moor(&["--config", &conf, "controller", "ls"], &[], None);
        ran.stdout.lines().filter(|l| l.contains(" voter")).count() == 2
    });
    wait::wait_until(
        "the joined controller to hold the restored state",
        DEADLINE,
        || {
            let ran = lab.moor(
                &[
                    "--config",
                    &joined_conf,
                    "get",
                    "cm",
                    "after",
                    "--stale",
                    "-o",
                    "yaml",
                ],
                &[],
                None,
            );
            ran.status.success()
        },
    );
    let stale = lab.ok(
        &[
            "--config",
            &joined_conf,
            "get",
            "cm",
            "site",
            "-n",
            "edge",
            "-o",
            "yaml",
            "--stale",
        ],
        &[],
        &joined,
    );
    assert_eq!(stale, before[1]);
}
