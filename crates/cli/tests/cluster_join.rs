//! Three controllers as real processes: `--init` one, `moor token create --role
//! controller`, `--join` two more through different members; objects applied on one are
//! read on another; used-up, expired, tampered and name-taking joins are refused with
//! clear errors; `moor token ls` shows no secret.

#[path = "common/cluster_util.rs"]
mod cluster_util;

use std::time::Duration;

use cluster_util::{Controller, Site};
use tests::daemon::free_udp_port;
use tests::wait;

const DEADLINE: Duration = Duration::from_secs(60);

/// An admin config that lists only `c`, so a command is answered by it.
fn config_for(lab: &Site, c: &Controller) -> String {
    lab.config_for(c, &format!("{}.conf", c.name))
        .display()
        .to_string()
}

/// Runs `moor controller --join` expecting it to fail, and returns what it said.
fn refused_join(lab: &Site, name: &str, token: &str, server: &Controller) -> String {
    let port = free_udp_port();
    let data = lab.dir().join(format!("refused-{name}-{port}"));
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = lab.controller_command(
        &data,
        &[
            "--join",
            token,
            "--server",
            &server.listen,
            "--name",
            name,
            "--listen",
            &listen,
        ],
    );
    let ran = cluster_util::run(&mut cmd, None, &format!("moor controller --join as {name}"));
    assert_eq!(ran.code(), Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        !data.join("controller/member.json").exists(),
        "a refused join left a member record"
    );
    ran.stderr
}

/// Waits until `c` answers reads and (a joined controller) has been added to the group.
fn wait_serving(lab: &Site, c: &Controller, config: &str) {
    let pending = c.data.join("controller/join.json");
    wait::wait_until(
        &format!("{} to answer as a member", c.name),
        DEADLINE,
        || {
            lab.moor(&["--config", config, "get", "ns"])
                .status
                .success()
                && !pending.exists()
        },
    );
}

fn tamper_fingerprint(token: &str) -> String {
    let (rest, fingerprint) = token.rsplit_once('.').expect("token parts");
    let flipped = if fingerprint.starts_with('0') {
        "1"
    } else {
        "0"
    };
    format!("{rest}.{flipped}{}", &fingerprint[1..])
}

#[test]
fn controllers_join_with_tokens_and_bad_joins_are_refused() {
    let lab = Site::new("cluster-join");
    let ctl1 = lab.controller("ctl-1", None, &["--init"]);
    wait::wait_until("ctl-1 to answer", DEADLINE, || {
        lab.moor(&["get", "ns"]).status.success()
    });
    let config1 = config_for(&lab, &ctl1);

    let token = lab
        .ok(&["token", "create", "--role", "controller", "--uses", "2"])
        .trim()
        .to_string();
    assert!(token.starts_with("moor1."), "{token}");
    let secret = token.split('.').nth(2).expect("secret part").to_string();

    // ctl-2 joins through ctl-1, ctl-3 through ctl-2 (which holds the CA key too).
    let ctl2 = lab.controller("ctl-2", None, &["--join", &token, "--server", &ctl1.listen]);
    let config2 = config_for(&lab, &ctl2);
    wait_serving(&lab, &ctl2, &config2);
    let ctl3 = lab.controller("ctl-3", None, &["--join", &token, "--server", &ctl2.listen]);
    let config3 = config_for(&lab, &ctl3);
    wait_serving(&lab, &ctl3, &config3);
    let secrets_key =
        std::fs::read(ctl1.data.join("pki/secrets.key")).expect("ctl-1's secrets key");
    for c in [&ctl2, &ctl3] {
        assert!(c.data.join("pki/controller.pem").is_file());
        // Every controller must open the secrets any of them sealed.
        let key = std::fs::read(c.data.join("pki/secrets.key")).expect("a joined secrets key");
        assert_eq!(key, secrets_key, "{} holds another secrets key", c.name);
        let member =
            std::fs::read_to_string(c.data.join("controller/member.json")).expect("member.json");
        assert!(!member.contains(&secret), "the secret reached {}", c.name);
    }

    // Written through one controller, read through the others.
    let manifest = lab.dir().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site}\ndata: {region: north}\n",
    )
    .expect("write manifest");
    lab.ok(&[
        "--config",
        &config3,
        "apply",
        "-f",
        &manifest.display().to_string(),
    ]);
    for config in [&config1, &config2] {
        let yaml = lab.ok(&["--config", config, "get", "cm", "site", "-o", "yaml"]);
        assert!(yaml.contains("region: north"), "{yaml}");
    }

    // Every controller lists the same three voters, one of them marked as the leader
    // (the joined ones become voters once promoted: wait for that).
    for config in [&config1, &config2, &config3] {
        wait::wait_until(
            "three voters in controller ls",
            Duration::from_secs(30),
            || {
                let table = lab.ok(&["--config", config, "controller", "ls"]);
                table.lines().filter(|l| l.contains(" voter")).count() == 3
            },
        );
        let table = lab.ok(&["--config", config, "controller", "ls"]);
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), 3, "{table}");
        for name in ["ctl-1", "ctl-2", "ctl-3"] {
            assert!(
                rows.iter().any(|r| r.contains(name)),
                "{name} missing: {table}"
            );
        }
        assert_eq!(
            rows.iter().filter(|r| r.ends_with("leader")).count(),
            1,
            "{table}"
        );
    }

    // Used up: the two uses went to ctl-2 and ctl-3.
    let err = refused_join(&lab, "ctl-4", &token, &ctl1);
    assert!(err.contains("has no uses left"), "{err}");

    // A name another controller holds, with a fresh token.
    let fresh = lab
        .ok(&["token", "create", "--role", "controller"])
        .trim()
        .to_string();
    let err = refused_join(&lab, "ctl-1", &fresh, &ctl3);
    assert!(
        err.contains("controller name ctl-1 is already taken"),
        "{err}"
    );
    let err = refused_join(&lab, "ctl-2", &fresh, &ctl1);
    assert!(
        err.contains("controller name ctl-2 is already taken"),
        "{err}"
    );

    // A token whose fingerprint is not this cluster's CA: the joiner refuses the server.
    let err = refused_join(&lab, "ctl-5", &tamper_fingerprint(&fresh), &ctl1);
    assert!(err.contains("fingerprint"), "{err}");

    // An agent token does not make a controller.
    let agent = lab
        .ok(&["token", "create", "--role", "agent"])
        .trim()
        .to_string();
    let err = refused_join(&lab, "ctl-6", &agent, &ctl2);
    assert!(err.contains("admits role agent"), "{err}");

    // Expired: wait until the controllers say so, then try.
    let short = lab
        .ok(&["token", "create", "--role", "controller", "--ttl", "1s"])
        .trim()
        .to_string();
    let short_id = short.split('.').nth(1).expect("id part").to_string();
    wait::wait_until("the short token to expire", DEADLINE, || {
        lab.ok(&["token", "ls"])
            .lines()
            .any(|l| l.starts_with(&short_id) && l.contains("(expired)"))
    });
    let err = refused_join(&lab, "ctl-7", &short, &ctl1);
    assert!(err.contains(&format!("token {short_id} expired")), "{err}");

    // ls: ids, roles and uses, no secret; rm removes.
    let listing = lab.ok(&["--config", &config2, "token", "ls"]);
    let id = token.split('.').nth(1).expect("id part");
    let line = listing
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listing}"));
    assert!(
        line.contains("controller") && line.ends_with(" 0"),
        "{line}"
    );
    for t in [&token, &fresh, &agent, &short] {
        let secret = t.split('.').nth(2).expect("secret part");
        assert!(!listing.contains(secret), "ls shows a secret:\n{listing}");
    }
    assert_eq!(
        lab.ok(&["token", "rm", id]),
        format!("token {id} deleted\n")
    );
    let gone = lab.moor(&["token", "rm", id]);
    assert_eq!(gone.code(), Some(1), "{}", gone.stderr);
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);

    // No controller logged a secret.
    for c in [&ctl1, &ctl2, &ctl3] {
        let log = c.log();
        for t in [&token, &fresh, &agent, &short] {
            let secret = t.split('.').nth(2).expect("secret part");
            assert!(!log.contains(secret), "{} logged a secret:\n{log}", c.name);
        }
    }

    // ctl-3 leaves the group; the other two go on and no longer list it.
    let out = lab.ok(&["--config", &config1, "controller", "remove", "ctl-3"]);
    assert!(out.starts_with("controller ctl-3 (id "), "{out}");
    wait::wait_until(
        "ctl-3 gone from controller ls",
        Duration::from_secs(30),
        || {
            !lab.ok(&["--config", &config2, "controller", "ls"])
                .contains("ctl-3")
        },
    );
    let ran = lab.moor(&["--config", &config1, "controller", "remove", "ctl-3"]);
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("not a member"), "{}", ran.stderr);
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\ndata: {k: v}\n",
    )
    .expect("write manifest");
    lab.ok(&[
        "--config",
        &config2,
        "apply",
        "-f",
        &manifest.display().to_string(),
    ]);
    assert!(
        lab.ok(&["--config", &config1, "get", "cm", "after"])
            .contains("after")
    );
}
