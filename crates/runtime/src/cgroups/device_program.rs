//! Device rules to a `BPF_PROG_TYPE_CGROUP_DEVICE` program: a pure function.
//!
//! Owns [`device_program`] and the instruction encoding [`BpfInsn`]. It does not load or
//! attach anything (that is [`super::bpf`]), and it does not decide which groups get a
//! filter (that is [`super::Cgroup::create`]).
//!
//! The kernel runs the program on every device access with a context
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` where
//! `access_type = (access << 16) | type` (type block 1, char 2; access mknod 1, read 2,
//! write 4). It returns 1 to allow and 0 to deny.
//!
//! Semantics, per access bit: the last rule that matches the device and names the bit
//! decides it; a bit no rule names is denied. A request for several bits (an `open` for
//! read and write) is allowed only when every bit is. The program walks the rules from
//! last to first, keeping the bits still undecided in `w3`:
//!
//! ```text
//!   w2 = type, w3 = requested access, w4 = major, w5 = minor
//!   for each rule, last first:
//!       if type/major/minor do not match: next rule
//!       deny rule:  if w3 & rule.access != 0: return 0        (a bit is denied)
//!       allow rule: w3 &= !rule.access; if w3 == 0: return 1  (every bit allowed)
//!   return 0
//! ```
//!
//! This is stricter than checking "request within the rule's access" per rule: a
//! `deny c 1:3 w` after `allow c 1:3 rw` also refuses an open for read and write.

use crate::config::{DeviceRule, DeviceRuleKind};

/// Device type values in `bpf_cgroup_dev_ctx.access_type` (`BPF_DEVCG_DEV_*`).
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
/// Access bits in the upper half of `access_type` (`BPF_DEVCG_ACC_*`).
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;

// Instruction classes, operations and sources of the eBPF encoding (linux/bpf_common.h,
// linux/bpf.h). Only the ones this generator emits.
pub(crate) const BPF_LDX: u8 = 0x01;
pub(crate) const BPF_ALU: u8 = 0x04;
pub(crate) const BPF_JMP: u8 = 0x05;
pub(crate) const BPF_W: u8 = 0x00;
pub(crate) const BPF_MEM: u8 = 0x60;
pub(crate) const BPF_K: u8 = 0x00;
pub(crate) const BPF_X: u8 = 0x08;
pub(crate) const BPF_AND: u8 = 0x50;
pub(crate) const BPF_RSH: u8 = 0x70;
pub(crate) const BPF_MOV: u8 = 0xb0;
pub(crate) const BPF_JEQ: u8 = 0x10;
pub(crate) const BPF_JNE: u8 = 0x50;
pub(crate) const BPF_EXIT: u8 = 0x90;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// `dst_reg:4, src_reg:4` as C lays out the bit-fields on this target.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        // C bit-fields fill from the least significant bit on little-endian targets and
        // from the most significant one on big-endian targets.
        let regs = if cfg!(target_endian = "little") {
            (dst & 0x0f) | (src << 4)
        } else {
            (dst << 4) | (src & 0x0f)
        };
        BpfInsn {
            code,
            regs,
            off,
            imm,
        }
    }

    /// The destination register.
    pub fn dst(self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0x0f
        } else {
            self.regs >> 4
        }
    }

    /// The source register.
    pub fn src(self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0x0f
        }
    }
}

/// `dst = *(u32 *)(src + off)`
fn load_word(dst: u8, src: u8, off: i16) -> BpfInsn {
    BpfInsn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}

/// 32-bit `dst op= imm` (the upper half of `dst` is cleared).
fn alu32_imm(op: u8, dst: u8, imm: u32) -> BpfInsn {
    // The instruction stores the immediate's bits; a 32-bit ALU operation reads them back
    // as u32, so values above i32::MAX survive the cast.
    BpfInsn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm as i32)
}

/// 32-bit `dst = src`.
fn mov32_reg(dst: u8, src: u8) -> BpfInsn {
    BpfInsn::new(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}

/// `if dst op imm goto +off`, comparing all 64 bits (`imm` sign-extended).
fn jump_imm(op: u8, dst: u8, imm: i32) -> BpfInsn {
    BpfInsn::new(BPF_JMP | op | BPF_K, dst, 0, 0, imm)
}

/// `if dst op src goto +off`
fn jump_reg(op: u8, dst: u8, src: u8) -> BpfInsn {
    BpfInsn::new(BPF_JMP | op | BPF_X, dst, src, 0, 0)
}

fn exit() -> BpfInsn {
    BpfInsn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// Registers: r1 holds the context on entry and is scratch afterwards.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// The program for `rules` (in the order the configuration gives them). An empty list
/// gives a program that denies every device.
pub fn device_program(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let mut prog = vec![
        load_word(R_TYPE, R1, 0),
        alu32_imm(BPF_AND, R_TYPE, 0xffff),
        load_word(R_ACCESS, R1, 0),
        alu32_imm(BPF_RSH, R_ACCESS, 16),
        load_word(R_MAJOR, R1, 4),
        load_word(R_MINOR, R1, 8),
    ];
    for rule in rules.iter().rev() {
        let access = rule_access(rule);
        if access == 0 {
            // A rule naming no access matches no request.
            continue;
        }
        let block = rule_block(rule, access);
        prog.extend(block);
    }
    prog.push(alu32_imm(BPF_MOV, R0, 0));
    prog.push(exit());
    prog
}

fn rule_access(rule: &DeviceRule) -> u32 {
    let mut access = 0;
    if rule.access.mknod {
        access |= ACC_MKNOD;
    }
    if rule.access.read {
        access |= ACC_READ;
    }
    if rule.access.write {
        access |= ACC_WRITE;
    }
    access
}

/// One rule's instructions. Every jump with offset `NEXT` goes to the first instruction
/// after the block; offsets are filled in once the block's length is known.
fn rule_block(rule: &DeviceRule, access: u32) -> Vec<BpfInsn> {
    let mut block = Vec::new();
    let mut jumps = Vec::new();
    let mut jump_if_ne = |block: &mut Vec<BpfInsn>, reg: u8, value: u32| {
        match i32::try_from(value) {
            Ok(imm) => block.push(jump_imm(BPF_JNE, reg, imm)),
            Err(_) => {
                // A 64-bit compare would sign-extend the immediate; compare registers.
                block.push(alu32_imm(BPF_MOV, R1, value));
                block.push(jump_reg(BPF_JNE, reg, R1));
            }
        }
        jumps.push(block.len() - 1);
    };
    match rule.kind {
        DeviceRuleKind::All => {}
        DeviceRuleKind::Char => jump_if_ne(&mut block, R_TYPE, DEV_CHAR),
        DeviceRuleKind::Block => jump_if_ne(&mut block, R_TYPE, DEV_BLOCK),
    }
    if let Some(major) = rule.major {
        jump_if_ne(&mut block, R_MAJOR, major);
    }
    if let Some(minor) = rule.minor {
        jump_if_ne(&mut block, R_MINOR, minor);
    }
    if rule.allow {
        block.push(alu32_imm(BPF_AND, R_ACCESS, !access));
        block.push(jump_imm(BPF_JNE, R_ACCESS, 0));
        jumps.push(block.len() - 1);
        block.push(alu32_imm(BPF_MOV, R0, 1));
    } else {
        block.push(mov32_reg(R1, R_ACCESS));
        block.push(alu32_imm(BPF_AND, R1, access));
        block.push(jump_imm(BPF_JEQ, R1, 0));
        jumps.push(block.len() - 1);
        block.push(alu32_imm(BPF_MOV, R0, 0));
    }
    block.push(exit());
    let len = block.len();
    for at in jumps {
        // Blocks are a handful of instructions, far below i16::MAX.
        block[at].off = (len - at - 1) as i16;
    }
    block
}

#[cfg(test)]
pub(crate) mod interp;
#[cfg(test)]
mod tests;
