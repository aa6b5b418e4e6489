//! The seccomp BPF program installed in the supervised child before it execs CMD.
//!
//! It decides, in the kernel and without a round trip, everything that does not need a path:
//! foreign architectures are killed, x32 numbers and io_uring fail, namespace and mount
//! escapes fail, read-only opens run natively. Everything that names a path (or a process that
//! could be the supervisor) is sent to the supervisor as a user notification.
//! It must never allow a syscall that the supervisor is meant to judge: a missed syscall here is a
//! silent bypass, so the table is the single place the supervised set is written down.

use libc::{c_long, sock_filter};

use crate::platform::linux::sys::seccomp::{
    off_arg_lo, AUDIT_ARCH_NATIVE, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_LD_W_ABS, BPF_RET_K,
    FILTER_FLAG_NEW_LISTENER, OFF_ARCH, OFF_NR, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS,
    RET_USER_NOTIF, X32_SYSCALL_BIT,
};

/// Open flags that make an open modify the file system: write access mode, create, truncate.
/// (`O_TMPFILE` needs a write access mode; `O_APPEND` without one cannot write.)
pub const OPEN_MODIFY_MASK: u32 = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) as u32;

/// Namespace flags the agent may not request: a user namespace gives it CAP_SYS_ADMIN over a
/// mount namespace, where a bind mount of a zone under another name would make every path the
/// supervisor resolves wrong; a pid namespace would make the pids it passes to kill() mean
/// something else than they mean to the supervisor.
const NAMESPACE_MASK: u32 = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u32;

/// What the filter does with one syscall number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Ask the supervisor.
    Notify,
    /// Fail with this errno in the kernel.
    Errno(i32),
    /// Notify when the low word of `args[arg]` has any bit of `mask`, else allow natively.
    NotifyIfFlags { arg: u32, mask: u32 },
    /// Fail with `errno` when the low word of `args[arg]` has any bit of `mask`, else allow.
    ErrnoIfFlags { arg: u32, mask: u32, errno: i32 },
    /// Fail with `errno` when the low word of `args[arg]` is one of `values`, else allow (at
    /// most 4 values, so that the block's jumps fit).
    ErrnoIfOneOf {
        arg: u32,
        values: &'static [u32],
        errno: i32,
    },
}

/// ioctl requests refused to every agent: TIOCSTI pushes bytes into a terminal's input, as if
/// typed (the human's shell on a shared terminal runs them, after the agent is gone);
/// TIOCLINUX's selection paste does the same on a virtual console. The kernel reads the request
/// as an `unsigned int`, so the low word is the whole of it.
const TERMINAL_INJECTION: &[u32] = &[libc::TIOCSTI as u32, 0x541C /* TIOCLINUX */];

/// What the filter must cover, decided by the caller.
#[derive(Clone, Copy, Debug)]
pub struct FilterOptions {
    /// Notify read-only opens too (secret zones).
    pub supervise_reads: bool,
}

/// The syscall table: number → rule. Everything not listed is allowed natively.
pub fn rules(options: FilterOptions) -> Vec<(c_long, Rule)> {
    use libc::*;
    let open_rule = |arg| {
        if options.supervise_reads {
            Rule::Notify
        } else {
            Rule::NotifyIfFlags {
                arg,
                mask: OPEN_MODIFY_MASK,
            }
        }
    };
    let mut table = vec![
        // Path operations, judged by the supervisor.
        (SYS_execve, Rule::Notify),
        (SYS_execveat, Rule::Notify),
        (SYS_unlinkat, Rule::Notify),
        (SYS_renameat, Rule::Notify),
        (SYS_renameat2, Rule::Notify),
        (SYS_linkat, Rule::Notify),
        (SYS_truncate, Rule::Notify),
        (SYS_mkdirat, Rule::Notify),
        (SYS_mknodat, Rule::Notify),
        (SYS_symlinkat, Rule::Notify),
        (SYS_openat, open_rule(2)),
        // open_how is behind a pointer: BPF cannot see the flags.
        (SYS_openat2, Rule::Notify),
        // Processes that might be the supervisor: checked against its thread group.
        (SYS_kill, Rule::Notify),
        (SYS_tkill, Rule::Notify),
        (SYS_tgkill, Rule::Notify),
        (SYS_pidfd_send_signal, Rule::Notify),
        (SYS_ptrace, Rule::Notify),
        (SYS_process_vm_readv, Rule::Notify),
        (SYS_process_vm_writev, Rule::Notify),
        (SYS_pidfd_getfd, Rule::Notify),
        (SYS_pidfd_open, Rule::Notify),
        // A local socket's name is a file (bind creates it) or a server (connect reaches it,
        // and some servers run commands: tmux, dockerd, systemd, ...).
        (SYS_bind, Rule::Notify),
        (SYS_connect, Rule::Notify),
        // Only to keep the supervisor's cache of umasks (for the files it creates) fresh.
        (SYS_umask, Rule::Notify),
        // io_uring performs file operations from kernel workers, out of the filter's sight.
        (SYS_io_uring_setup, Rule::Errno(ENOSYS)),
        (SYS_io_uring_enter, Rule::Errno(ENOSYS)),
        (SYS_io_uring_register, Rule::Errno(ENOSYS)),
        // clone3 passes its flags behind a pointer; libc falls back to clone() on ENOSYS.
        (SYS_clone3, Rule::Errno(ENOSYS)),
        // Refused by the supervisor, which records why (a nested sandbox: see `plan`); the
        // flags are in a register, so only these rare calls make the round trip.
        (
            SYS_clone,
            Rule::NotifyIfFlags {
                arg: 0,
                mask: NAMESPACE_MASK,
            },
        ),
        (
            SYS_unshare,
            Rule::NotifyIfFlags {
                arg: 0,
                mask: NAMESPACE_MASK,
            },
        ),
        (SYS_setns, Rule::Errno(EPERM)),
        // An agent's own Landlock domain would not bind the calls the supervisor performs for
        // it: its sandbox would hold less than it believes. Refused and recorded (see `plan`).
        (SYS_landlock_restrict_self, Rule::Notify),
        // A nested listener of the agent's own would win over ours (the newest filter's
        // USER_NOTIF takes precedence and its CONTINUE skips ours).
        (
            SYS_seccomp,
            Rule::ErrnoIfFlags {
                arg: 1,
                mask: FILTER_FLAG_NEW_LISTENER,
                errno: EPERM,
            },
        ),
        // Mounts and root changes would make resolved paths lie (privileged, but tests run as root).
        (SYS_mount, Rule::Errno(EPERM)),
        (SYS_umount2, Rule::Errno(EPERM)),
        (SYS_pivot_root, Rule::Errno(EPERM)),
        (SYS_chroot, Rule::Errno(EPERM)),
        (SYS_open_tree, Rule::Errno(EPERM)),
        (SYS_move_mount, Rule::Errno(EPERM)),
        (SYS_fsopen, Rule::Errno(EPERM)),
        (SYS_fsmount, Rule::Errno(EPERM)),
        (SYS_fspick, Rule::Errno(EPERM)),
        (SYS_mount_setattr, Rule::Errno(EPERM)),
        // Opens a file by handle, with no path to judge (needs CAP_DAC_READ_SEARCH).
        (SYS_open_by_handle_at, Rule::Errno(EPERM)),
        (
            SYS_ioctl,
            Rule::ErrnoIfOneOf {
                arg: 1,
                values: TERMINAL_INJECTION,
                errno: EPERM,
            },
        ),
    ];
    #[cfg(target_arch = "x86_64")]
    table.extend([
        (SYS_open, open_rule(1)),
        (SYS_creat, Rule::Notify),
        (SYS_unlink, Rule::Notify),
        (SYS_rmdir, Rule::Notify),
        (SYS_rename, Rule::Notify),
        (SYS_link, Rule::Notify),
        (SYS_mkdir, Rule::Notify),
        (SYS_mknod, Rule::Notify),
        (SYS_symlink, Rule::Notify),
    ]);
    table
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Assemble the program: arch check, x32 check, then one compare block per rule.
pub fn program(options: FilterOptions) -> Vec<sock_filter> {
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_NATIVE, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32),
    ];
    for (nr, rule) in rules(options) {
        let block: Vec<sock_filter> = match rule {
            Rule::Notify => vec![stmt(BPF_RET_K, RET_USER_NOTIF)],
            Rule::Errno(errno) => vec![stmt(BPF_RET_K, RET_ERRNO | errno as u32)],
            Rule::NotifyIfFlags { arg, mask } => vec![
                stmt(BPF_LD_W_ABS, off_arg_lo(arg)),
                jump(BPF_JSET_K, mask, 0, 1),
                stmt(BPF_RET_K, RET_USER_NOTIF),
                stmt(BPF_RET_K, RET_ALLOW),
            ],
            Rule::ErrnoIfFlags { arg, mask, errno } => vec![
                stmt(BPF_LD_W_ABS, off_arg_lo(arg)),
                jump(BPF_JSET_K, mask, 0, 1),
                stmt(BPF_RET_K, RET_ERRNO | errno as u32),
                stmt(BPF_RET_K, RET_ALLOW),
            ],
            Rule::ErrnoIfOneOf { arg, values, errno } => {
                // LD; one JEQ per value, taken to the last instruction; ALLOW; ERRNO.
                let mut block = vec![stmt(BPF_LD_W_ABS, off_arg_lo(arg))];
                for (i, value) in values.iter().enumerate() {
                    block.push(jump(BPF_JEQ_K, *value, (values.len() - i) as u8, 0));
                }
                block.push(stmt(BPF_RET_K, RET_ALLOW));
                block.push(stmt(BPF_RET_K, RET_ERRNO | errno as u32));
                block
            }
        };
        // Blocks are at most 7 instructions: the skip always fits the 8-bit jump offset.
        prog.push(jump(BPF_JEQ_K, nr as u32, 0, block.len() as u8));
        prog.extend(block);
    }
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the subset of classic BPF the builder emits, so the table's
    /// meaning is tested without installing anything.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            match ins.code {
                BPF_LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                    let taken = match ins.code {
                        BPF_JEQ_K => acc == ins.k,
                        BPF_JGE_K => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += 1 + if taken { ins.jt } else { ins.jf } as usize;
                }
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const OPTS: FilterOptions = FilterOptions {
        supervise_reads: false,
    };

    #[test]
    fn foreign_arch_is_killed_and_x32_fails() {
        let p = program(OPTS);
        assert_eq!(run(&p, 0x4000_0003, 1, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(
            run(&p, AUDIT_ARCH_NATIVE, X32_SYSCALL_BIT | 87, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }

    #[test]
    fn read_opens_run_natively_write_opens_are_notified() {
        let p = program(OPTS);
        let openat = libc::SYS_openat as u32;
        let ro = libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64;
        assert_eq!(
            run(&p, AUDIT_ARCH_NATIVE, openat, [0, 0, ro, 0, 0, 0]),
            RET_ALLOW
        );
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC] {
            assert_eq!(
                run(&p, AUDIT_ARCH_NATIVE, openat, [0, 0, flags as u64, 0, 0, 0]),
                RET_USER_NOTIF,
                "flags {flags:#x}"
            );
        }
        let reads = program(FilterOptions {
            supervise_reads: true,
        });
        assert_eq!(
            run(&reads, AUDIT_ARCH_NATIVE, openat, [0, 0, ro, 0, 0, 0]),
            RET_USER_NOTIF
        );
    }

    #[test]
    fn escapes_fail_in_the_kernel() {
        let p = program(OPTS);
        let a = AUDIT_ARCH_NATIVE;
        assert_eq!(
            run(&p, a, libc::SYS_io_uring_setup as u32, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
        let newuser = libc::CLONE_NEWUSER as u64;
        assert_eq!(
            run(&p, a, libc::SYS_unshare as u32, [newuser, 0, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(
            run(&p, a, libc::SYS_clone as u32, [0x11, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            run(&p, a, libc::SYS_seccomp as u32, [1, 8, 0, 0, 0, 0]),
            RET_ERRNO | libc::EPERM as u32
        );
        assert_eq!(
            run(&p, a, libc::SYS_kill as u32, [1, 9, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(run(&p, a, libc::SYS_getpid as u32, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn typing_into_a_terminal_fails_other_ioctls_run() {
        let p = program(OPTS);
        let (a, ioctl) = (AUDIT_ARCH_NATIVE, libc::SYS_ioctl as u32);
        let eperm = RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run(&p, a, ioctl, [0, 0x5412, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&p, a, ioctl, [0, 0x541C, 0, 0, 0, 0]), eperm);
        // The kernel ignores the high word of the request: so does the filter.
        assert_eq!(run(&p, a, ioctl, [0, 0x1_0000_5412, 0, 0, 0, 0]), eperm);
        for request in [libc::TIOCGWINSZ, libc::TCGETS, libc::FIONREAD, 0x5413] {
            assert_eq!(
                run(&p, a, ioctl, [0, request, 0, 0, 0, 0]),
                RET_ALLOW,
                "{request:#x}"
            );
        }
    }
}
