//! A tiny interpreter for exactly the instructions [`super::device_program`] emits, so
//! the filter's semantics are tested without root and without a kernel.
//!
//! Anything outside that subset (another opcode, a jump out of the program, reading a
//! register never written, running off the end) is an `Err`, so a generator change
//! that emits something new fails the tests until the interpreter learns it too.

use super::*;

/// What the kernel would see: `(type, major, minor, access)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub kind: u32,
    pub major: u32,
    pub minor: u32,
    pub access: u32,
}

/// Runs `prog` on the context the kernel builds for `req`; `Ok(true)` means allowed.
pub(crate) fn run(prog: &[BpfInsn], req: Request) -> Result<bool, String> {
    let mut ctx = [0u8; 12];
    ctx[0..4].copy_from_slice(&((req.access << 16) | req.kind).to_ne_bytes());
    ctx[4..8].copy_from_slice(&req.major.to_ne_bytes());
    ctx[8..12].copy_from_slice(&req.minor.to_ne_bytes());

    // None = never written. r1 holds a pointer to the context, modelled as offset 0.
    let mut regs: [Option<u64>; 11] = [None; 11];
    regs[1] = Some(0);
    let mut ctx_ptr = [false; 11];
    ctx_ptr[1] = true;

    let mut pc = 0usize;
    for _ in 0..10_000 {
        let insn = *prog.get(pc).ok_or(format!("ran off the end at {pc}"))?;
        let (dst, src) = (usize::from(insn.dst()), usize::from(insn.src()));
        if dst > 10 || src > 10 {
            return Err(format!("bad register at {pc}"));
        }
        let read = |r: usize, regs: &[Option<u64>; 11]| {
            regs[r].ok_or(format!("read of unset r{r} at {pc}"))
        };
        let imm32 = insn.imm as u32;
        let mut next = pc + 1;
        match insn.code {
            c if c == BPF_LDX | BPF_MEM | BPF_W => {
                if !ctx_ptr[src] {
                    return Err(format!("load through a non-context register at {pc}"));
                }
                let off = usize::try_from(insn.off).map_err(|_| "negative offset")?;
                let bytes = ctx
                    .get(off..off + 4)
                    .ok_or(format!("load outside the context at {pc}"))?;
                let word = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                regs[dst] = Some(u64::from(word));
                ctx_ptr[dst] = false;
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => {
                regs[dst] = Some(u64::from(read(dst, &regs)? as u32 & imm32));
                ctx_ptr[dst] = false;
            }
            c if c == BPF_ALU | BPF_RSH | BPF_K => {
                if imm32 >= 32 {
                    return Err(format!("shift too far at {pc}"));
                }
                regs[dst] = Some(u64::from((read(dst, &regs)? as u32) >> imm32));
                ctx_ptr[dst] = false;
            }
            c if c == BPF_ALU | BPF_MOV | BPF_K => {
                regs[dst] = Some(u64::from(imm32));
                ctx_ptr[dst] = false;
            }
            c if c == BPF_ALU | BPF_MOV | BPF_X => {
                if ctx_ptr[src] {
                    return Err(format!("32-bit move of a pointer at {pc}"));
                }
                regs[dst] = Some(u64::from(read(src, &regs)? as u32));
                ctx_ptr[dst] = false;
            }
            c if c == BPF_JMP | BPF_JNE | BPF_K || c == BPF_JMP | BPF_JEQ | BPF_K => {
                let left = read(dst, &regs)?;
                // The kernel sign-extends the immediate to 64 bits.
                let right = i64::from(insn.imm) as u64;
                let equal = left == right;
                let take = if c & 0xf0 == BPF_JNE { !equal } else { equal };
                if take {
                    next = jump_target(pc, insn.off, prog.len())?;
                }
            }
            c if c == BPF_JMP | BPF_JNE | BPF_X => {
                if read(dst, &regs)? != read(src, &regs)? {
                    next = jump_target(pc, insn.off, prog.len())?;
                }
            }
            c if c == BPF_JMP | BPF_EXIT => {
                return match read(0, &regs)? {
                    0 => Ok(false),
                    1 => Ok(true),
                    other => Err(format!("returned {other}")),
                };
            }
            other => return Err(format!("opcode {other:#04x} at {pc} is not in the subset")),
        }
        pc = next;
    }
    Err("no exit within the step limit".into())
}

fn jump_target(pc: usize, off: i16, len: usize) -> Result<usize, String> {
    if off < 0 {
        return Err(format!("backward jump at {pc}"));
    }
    let target = pc + 1 + off as usize;
    if target >= len {
        return Err(format!("jump out of the program at {pc}"));
    }
    Ok(target)
}
