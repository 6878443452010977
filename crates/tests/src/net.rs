//! Test hosts: network namespaces on a private switch, real `moor` processes in them,
//! and faults (links cut both ways or one way, a host isolated, healed again).
//!
//! ```text
//!   host ns "a" (10.77.0.1)   host ns "b" (10.77.0.2)   host ns "c" …
//!        eth0                      eth0                      eth0
//!          │ veth                    │ veth                    │
//!   ┌──────┴─────────── switch ns: bridge br0 ─────────────────┴──────┐
//!   │  nft bridge table "lab": forward drops = the cuts in force        │
//!   └───────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Everything lives in namespaces made for the lab (the bridge too), so nothing on the
//! machine's own network changes and two labs can use the same addresses. Programs run
//! in a host through `nsenter --net=…`: they enter only the network namespace, so mounts,
//! /proc and the file system behave as they do on a real box. The test process itself
//! never changes namespace. Cuts are nftables rules on the switch's bridge, so they apply
//! to packets in flight whatever the programs do, and one direction can be cut alone.
//! Dropping the [`Lab`] removes its namespaces (and with them every link and rule).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::prereq;

/// The lab network (every lab has its own switch, so the same addresses are reused).
const SUBNET: [u8; 3] = [10, 77, 0];
const PREFIX_LEN: u8 = 24;
const MAX_HOSTS: usize = 200;

static LABS: AtomicU32 = AtomicU32::new(0);

/// One host of a lab: a network namespace with `lo` and `eth0` up.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// The name the test gave it.
    pub name: String,
    /// The network namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// Its address on the lab network.
    pub addr: Ipv4Addr,
    /// Its port on the switch's bridge (inside the switch namespace).
    port: String,
}

impl LabHost {
    /// `/run/netns/<netns>`, what `nsenter --net=` takes.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// A command that runs `program` inside this host's network namespace only (what
    /// [`Lab::command`] makes; this one needs no `Lab`, so another thread can use it).
    /// `nsenter` execs `program` without forking, so the child's PID is `program`'s.
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program.as_ref());
        cmd
    }
}

/// A switch and the hosts on it. See the module docs.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<LabHost>,
}

impl Lab {
    /// A lab with no hosts yet, or `None` (after saying why) when this machine can't make
    /// one; under `MOOR_TEST_STRICT=1` that is a failure instead.
    pub fn new(test: &str) -> Option<Lab> {
        if !prereq::root() {
            return None;
        }
        for program in ["ip", "nsenter", "nft"] {
            prereq::program(program)?;
        }
        prereq::busybox()?;
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        // Short and unique on this machine: namespaces outlive nothing but this process.
        let prefix = format!("ml{}-{}", std::process::id(), n);
        let switch = format!("{prefix}-sw");
        let lab = Lab {
            prefix,
            switch,
            hosts: Vec::new(),
        };
        let ok = run_ok("ip", &["netns", "add", &lab.switch])
            && lab.in_switch("ip", &["link", "add", "br0", "type", "bridge"])
            && lab.in_switch("ip", &["link", "set", "br0", "up"])
            && lab.in_switch("ip", &["link", "set", "lo", "up"])
            && lab.nft(
                "add table bridge lab\n\
                 add chain bridge lab forward { type filter hook forward priority 0; policy accept; }",
            );
        let what = format!("a lab network for {test} (ip netns, a bridge, nftables)");
        prereq::require(&what, ok).then_some(lab)
    }

    /// Adds a host named `name` (its address is the next one on the lab network).
    pub fn add_host(&mut self, name: &str) -> LabHost {
        let index = self.hosts.len() + 1;
        assert!(index <= MAX_HOSTS, "a lab holds at most {MAX_HOSTS} hosts");
        let netns = format!("{}-{}", self.prefix, index);
        let port = format!("p{index}");
        let addr = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], index as u8);
        let cidr = format!("{addr}/{PREFIX_LEN}");
        let steps: [(&str, Vec<&str>); 6] = [
            ("ip", vec!["netns", "add", &netns]),
            (
                "ip",
                vec![
                    "link",
                    "add",
                    "eth0",
                    "netns",
                    &netns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &port,
                    "netns",
                    &self.switch,
                ],
            ),
            ("ip", vec!["-n", &netns, "link", "set", "lo", "up"]),
            (
                "ip",
                vec!["-n", &netns, "addr", "add", &cidr, "dev", "eth0"],
            ),
            ("ip", vec!["-n", &netns, "link", "set", "eth0", "up"]),
            (
                "ip",
                vec![
                    "-n",
                    &self.switch,
                    "link",
                    "set",
                    &port,
                    "master",
                    "br0",
                    "up",
                ],
            ),
        ];
        for (program, args) in steps {
            let out = run(program, &args);
            assert!(
                out.status.success(),
                "lab host {name}: {program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let host = LabHost {
            name: name.to_string(),
            netns,
            addr,
            port,
        };
        self.hosts.push(host.clone());
        host
    }

    /// The hosts, in the order they were added.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// A command that runs `program` inside `host`'s network namespace only.
    pub fn command(&self, host: &LabHost, program: impl AsRef<Path>) -> Command {
        host.command(program)
    }

    /// Drops every packet between `a` and `b`, both ways.
    pub fn cut(&self, a: &LabHost, b: &LabHost) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Drops the packets `from` sends to `to`; `to` still reaches `from`.
    pub fn cut_one_way(&self, from: &LabHost, to: &LabHost) {
        let rule = format!(
            "add rule bridge lab forward ip saddr {} ip daddr {} drop",
            from.addr, to.addr
        );
        assert!(self.nft(&rule), "cut {} -> {}", from.name, to.name);
    }

    /// Cuts `host` off from every other host, both ways (its link stays up, as when a
    /// switch port or a router in between fails).
    pub fn isolate(&self, host: &LabHost) {
        let rules = format!(
            "add rule bridge lab forward ip saddr {a} drop\n\
             add rule bridge lab forward ip daddr {a} drop",
            a = host.addr
        );
        assert!(self.nft(&rules), "isolate {}", host.name);
    }

    /// Takes `host`'s link down (the cable pulled) or up again.
    pub fn set_link(&self, host: &LabHost, up: bool) {
        let state = if up { "up" } else { "down" };
        assert!(
            self.in_switch("ip", &["link", "set", &host.port, state]),
            "link of {} {state}",
            host.name
        );
    }

    /// Removes every cut (links taken down stay down).
    pub fn heal(&self) {
        assert!(self.nft("flush chain bridge lab forward"), "heal");
    }

    /// Whether one ping from `from` to `to` is answered within a second.
    pub fn pings(&self, from: &LabHost, to: &LabHost) -> bool {
        // busybox's ping: the tests' busybox-static is there, iputils may not be.
        self.command(from, "/bin/busybox")
            .args(["ping", "-c", "1", "-W", "1", "-q", &to.addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// ICMP echo requests `host` has received so far (from its own `/proc/net/snmp`).
    pub fn echo_requests_received(&self, host: &LabHost) -> u64 {
        let out = self
            .command(host, "cat")
            .arg("/proc/net/snmp")
            .output()
            .expect("read /proc/net/snmp in a lab host");
        parse_in_echos(&String::from_utf8_lossy(&out.stdout))
            .expect("an Icmp InEchos counter in /proc/net/snmp")
    }

    fn in_switch(&self, program: &str, args: &[&str]) -> bool {
        let mut all = vec!["-n", self.switch.as_str()];
        all.extend_from_slice(args);
        debug_assert_eq!(program, "ip");
        run_ok(program, &all)
    }

    fn nft(&self, script: &str) -> bool {
        let mut child = match Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.switch))
            .args(["--", "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("lab: nft: {e}");
                return false;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(script.as_bytes());
        }
        match child.wait_with_output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                eprintln!(
                    "lab: nft {script:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                false
            }
            Err(e) => {
                eprintln!("lab: nft: {e}");
                false
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its links (the veth pairs) and its rules.
        for host in &self.hosts {
            let _ = run("ip", &["netns", "del", &host.netns]);
        }
        let _ = run("ip", &["netns", "del", &self.switch]);
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> bool {
    let out = run(program, args);
    if !out.status.success() {
        eprintln!(
            "lab: {program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out.status.success()
}

/// The `Icmp: … InEchos …` value of a `/proc/net/snmp` text.
fn parse_in_echos(snmp: &str) -> Option<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let column = names.split_whitespace().position(|n| n == "InEchos")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_echos_is_read_from_its_column() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InEchos\n\
                    Icmp: 9 0 0 2 7\n";
        assert_eq!(parse_in_echos(snmp), Some(7));
        assert_eq!(parse_in_echos("Icmp: InMsgs\n"), None);
        assert_eq!(parse_in_echos(""), None);
    }
}
