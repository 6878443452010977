use super::interp::{Request, run};
use super::*;
use crate::config::{DeviceAccess, DeviceRule, DeviceRuleKind};

fn rule(
    allow: bool,
    kind: DeviceRuleKind,
    major: Option<u32>,
    minor: Option<u32>,
    access: &str,
) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: DeviceAccess::parse(access).unwrap_or_default(),
    }
}

fn allow(kind: DeviceRuleKind, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
    rule(true, kind, major, minor, access)
}

fn deny(kind: DeviceRuleKind, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
    rule(false, kind, major, minor, access)
}

use DeviceRuleKind::{All, Block, Char};

fn char_req(major: u32, minor: u32, access: u32) -> Request {
    Request {
        kind: DEV_CHAR,
        major,
        minor,
        access,
    }
}

fn block_req(major: u32, minor: u32, access: u32) -> Request {
    Request {
        kind: DEV_BLOCK,
        major,
        minor,
        access,
    }
}

fn allowed(rules: &[DeviceRule], req: Request) -> bool {
    let prog = device_program(rules);
    match run(&prog, req) {
        Ok(v) => v,
        Err(e) => panic!("program for {rules:?} failed on {req:?}: {e}"),
    }
}

const RW: u32 = ACC_READ | ACC_WRITE;
const RWM: u32 = ACC_READ | ACC_WRITE | ACC_MKNOD;

#[test]
fn empty_rule_list_denies_everything() {
    for req in [
        char_req(1, 3, ACC_READ),
        char_req(0, 0, RWM),
        block_req(8, 0, ACC_WRITE),
        char_req(u32::MAX, u32::MAX, ACC_MKNOD),
    ] {
        assert!(!allowed(&[], req), "{req:?}");
    }
}

#[test]
fn exact_char_rule_allows_only_that_device_and_type() {
    let rules = [allow(Char, Some(1), Some(3), "rwm")];
    assert!(allowed(&rules, char_req(1, 3, ACC_READ)));
    assert!(allowed(&rules, char_req(1, 3, RWM)));
    assert!(!allowed(&rules, char_req(1, 5, ACC_READ)));
    assert!(!allowed(&rules, char_req(2, 3, ACC_READ)));
    assert!(!allowed(&rules, block_req(1, 3, ACC_READ)));
}

#[test]
fn partial_access_rule_allows_only_named_bits() {
    let rules = [allow(Char, Some(1), Some(3), "r")];
    assert!(allowed(&rules, char_req(1, 3, ACC_READ)));
    assert!(!allowed(&rules, char_req(1, 3, ACC_WRITE)));
    assert!(!allowed(&rules, char_req(1, 3, RW)));
    assert!(!allowed(&rules, char_req(1, 3, ACC_MKNOD)));
}

#[test]
fn bits_can_be_allowed_by_different_rules() {
    let rules = [
        allow(Char, Some(1), Some(3), "r"),
        allow(Char, Some(1), None, "w"),
    ];
    assert!(allowed(&rules, char_req(1, 3, RW)));
    assert!(!allowed(&rules, char_req(1, 4, RW)));
    assert!(allowed(&rules, char_req(1, 4, ACC_WRITE)));
}

#[test]
fn wildcard_major_and_minor_match_any_number() {
    let rules = [allow(Char, None, Some(7), "rw")];
    assert!(allowed(&rules, char_req(0, 7, ACC_READ)));
    assert!(allowed(&rules, char_req(4000, 7, ACC_WRITE)));
    assert!(!allowed(&rules, char_req(4000, 8, ACC_WRITE)));

    let rules = [allow(Block, Some(8), None, "r")];
    assert!(allowed(&rules, block_req(8, 0, ACC_READ)));
    assert!(allowed(&rules, block_req(8, 17, ACC_READ)));
    assert!(!allowed(&rules, block_req(9, 0, ACC_READ)));
    assert!(!allowed(&rules, char_req(8, 0, ACC_READ)));
}

#[test]
fn type_all_rule_matches_char_and_block() {
    let rules = [allow(All, None, None, "m")];
    assert!(allowed(&rules, char_req(5, 1, ACC_MKNOD)));
    assert!(allowed(&rules, block_req(259, 0, ACC_MKNOD)));
    assert!(!allowed(&rules, block_req(259, 0, ACC_READ)));
}

#[test]
fn later_deny_overrides_earlier_allow() {
    let rules = [
        allow(All, None, None, "rwm"),
        deny(Char, Some(1), Some(5), "rwm"),
    ];
    assert!(allowed(&rules, char_req(1, 3, RW)));
    assert!(allowed(&rules, block_req(8, 0, ACC_READ)));
    assert!(!allowed(&rules, char_req(1, 5, ACC_READ)));
    assert!(!allowed(&rules, char_req(1, 5, ACC_MKNOD)));
}

#[test]
fn later_allow_overrides_earlier_deny() {
    let rules = [
        deny(Char, Some(1), None, "rwm"),
        allow(Char, Some(1), Some(3), "rw"),
    ];
    assert!(allowed(&rules, char_req(1, 3, RW)));
    assert!(!allowed(&rules, char_req(1, 3, ACC_MKNOD)));
    assert!(!allowed(&rules, char_req(1, 5, ACC_READ)));
}

#[test]
fn partial_deny_refuses_a_request_that_includes_the_denied_bit() {
    let rules = [
        allow(Char, Some(1), Some(3), "rw"),
        deny(Char, Some(1), Some(3), "w"),
    ];
    assert!(allowed(&rules, char_req(1, 3, ACC_READ)));
    assert!(!allowed(&rules, char_req(1, 3, ACC_WRITE)));
    assert!(!allowed(&rules, char_req(1, 3, RW)));
}

#[test]
fn deny_all_at_the_end_denies_everything_before_it() {
    let rules = [
        allow(Char, Some(1), Some(3), "rwm"),
        deny(All, None, None, "rwm"),
    ];
    assert!(!allowed(&rules, char_req(1, 3, ACC_READ)));
}

#[test]
fn rule_with_no_access_is_ignored() {
    let rules = [allow(All, None, None, "rwm"), deny(All, None, None, "")];
    assert!(allowed(&rules, char_req(1, 3, ACC_READ)));
}

#[test]
fn numbers_above_i32_max_compare_as_unsigned() {
    let big = u32::MAX - 1;
    let rules = [allow(Char, Some(big), Some(0x8000_0000), "r")];
    assert!(allowed(&rules, char_req(big, 0x8000_0000, ACC_READ)));
    assert!(!allowed(&rules, char_req(big, 0, ACC_READ)));
    assert!(!allowed(&rules, char_req(1, 0x8000_0000, ACC_READ)));
}

#[test]
fn many_rules_agree_with_a_reference_model() {
    // The reference: per bit, the last rule matching the device and naming the bit.
    fn reference(rules: &[DeviceRule], req: Request) -> bool {
        let bits = [ACC_MKNOD, ACC_READ, ACC_WRITE];
        bits.iter().filter(|b| req.access & **b != 0).all(|bit| {
            rules
                .iter()
                .rev()
                .find(|r| {
                    let kind_ok = match r.kind {
                        All => true,
                        Char => req.kind == DEV_CHAR,
                        Block => req.kind == DEV_BLOCK,
                    };
                    let named = match *bit {
                        ACC_MKNOD => r.access.mknod,
                        ACC_READ => r.access.read,
                        _ => r.access.write,
                    };
                    kind_ok
                        && r.major.is_none_or(|m| m == req.major)
                        && r.minor.is_none_or(|m| m == req.minor)
                        && named
                })
                .is_some_and(|r| r.allow)
        })
    }
    let rules = [
        deny(All, None, None, "rwm"),
        allow(Char, Some(1), None, "rw"),
        deny(Char, Some(1), Some(5), "w"),
        allow(Block, None, Some(0), "r"),
        allow(All, Some(10), Some(200), "rwm"),
        deny(Block, Some(8), None, "rm"),
        allow(Char, None, None, "m"),
    ];
    let mut checked = 0;
    for kind in [DEV_CHAR, DEV_BLOCK] {
        for major in [0, 1, 8, 10, 4000] {
            for minor in [0, 3, 5, 200] {
                for access in 1..=RWM {
                    let req = Request {
                        kind,
                        major,
                        minor,
                        access,
                    };
                    assert_eq!(allowed(&rules, req), reference(&rules, req), "{req:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * 5 * 4 * 7);
}

#[test]
fn program_starts_by_loading_the_context_and_ends_with_deny() {
    let prog = device_program(&[]);
    assert_eq!(prog.len(), 8);
    assert_eq!(prog[0].code, BPF_LDX | BPF_MEM | BPF_W);
    assert_eq!((prog[0].dst(), prog[0].src()), (2, 1));
    assert_eq!(prog[6].code, BPF_ALU | BPF_MOV | BPF_K);
    assert_eq!(prog[6].imm, 0);
    assert_eq!(prog[7].code, BPF_JMP | BPF_EXIT);
}
