//! The lab network itself: hosts reach each other, and each kind of cut does what it
//! says (observed with pings and with the echo requests a host counts).

use tests::net::Lab;

#[test]
fn hosts_reach_each_other_until_cut_and_again_once_healed() {
    let Some(mut lab) = Lab::new("lab-cuts") else {
        return;
    };
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let c = lab.add_host("c");
    assert_eq!(lab.hosts().len(), 3);
    assert!(lab.pings(&a, &b) && lab.pings(&b, &c) && lab.pings(&c, &a));

    lab.cut(&a, &b);
    assert!(!lab.pings(&a, &b) && !lab.pings(&b, &a));
    assert!(lab.pings(&a, &c) && lab.pings(&b, &c), "only a-b is cut");
    lab.heal();
    assert!(lab.pings(&a, &b));

    // One way: a's packets to b are lost, b's to a arrive (a's replies don't).
    lab.cut_one_way(&a, &b);
    let (at_a, at_b) = (
        lab.echo_requests_received(&a),
        lab.echo_requests_received(&b),
    );
    assert!(!lab.pings(&a, &b));
    assert_eq!(
        lab.echo_requests_received(&b),
        at_b,
        "a's request reached b"
    );
    assert!(!lab.pings(&b, &a), "a's reply must be lost");
    assert_eq!(
        lab.echo_requests_received(&a),
        at_a + 1,
        "b's request reached a"
    );
    lab.heal();

    lab.isolate(&c);
    assert!(!lab.pings(&a, &c) && !lab.pings(&c, &b));
    assert!(lab.pings(&a, &b));
    lab.heal();

    lab.set_link(&b, false);
    assert!(!lab.pings(&a, &b));
    lab.set_link(&b, true);
    tests::wait::wait_until(
        "b's link to come back",
        std::time::Duration::from_secs(10),
        || lab.pings(&a, &b),
    );
}

#[test]
fn programs_in_a_host_see_its_network_and_the_machines_files() {
    let Some(mut lab) = Lab::new("lab-enter") else {
        return;
    };
    let a = lab.add_host("a");
    let out = lab
        .command(&a, "/bin/busybox")
        .args(["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        .output()
        .expect("run ip in a lab host");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{}/24", a.addr)), "{text}");
    // Only the network namespace is entered: the file system is the machine's.
    let marker = std::env::temp_dir().join(format!("moor-lab-{}", std::process::id()));
    std::fs::write(&marker, b"seen").expect("write marker");
    let out = lab
        .command(&a, "/bin/busybox")
        .args(["cat", &marker.to_string_lossy()])
        .output()
        .expect("run cat in a lab host");
    std::fs::remove_file(&marker).ok();
    assert_eq!(out.stdout, b"seen");
}
