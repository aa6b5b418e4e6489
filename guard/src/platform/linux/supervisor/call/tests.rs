use super::*;

const CWD: u64 = libc::AT_FDCWD as u64;

#[cfg(target_arch = "x86_64")]
#[test]
fn each_legacy_call_decodes_as_its_at_form_from_the_cwd() {
    use libc::*;
    let (path, other, mode, dev) = (0x1000, 0x2000, 0o751, 0x0801);
    let flags = (O_WRONLY | O_CREAT) as u64;
    let pairs: [(i64, [u64; 6], i64, [u64; 6]); 10] = [
        (
            SYS_open,
            [path, flags, mode, 0, 0, 0],
            SYS_openat,
            [CWD, path, flags, mode, 0, 0],
        ),
        (
            SYS_creat,
            [path, mode, 0, 0, 0, 0],
            SYS_openat,
            [CWD, path, (O_CREAT | O_WRONLY | O_TRUNC) as u64, mode, 0, 0],
        ),
        (
            SYS_unlink,
            [path, 0, 0, 0, 0, 0],
            SYS_unlinkat,
            [CWD, path, 0, 0, 0, 0],
        ),
        (
            SYS_rmdir,
            [path, 0, 0, 0, 0, 0],
            SYS_unlinkat,
            [CWD, path, AT_REMOVEDIR as u64, 0, 0, 0],
        ),
        (
            SYS_mkdir,
            [path, mode, 0, 0, 0, 0],
            SYS_mkdirat,
            [CWD, path, mode, 0, 0, 0],
        ),
        (
            SYS_mknod,
            [path, mode, dev, 0, 0, 0],
            SYS_mknodat,
            [CWD, path, mode, dev, 0, 0],
        ),
        (
            SYS_symlink,
            [other, path, 0, 0, 0, 0],
            SYS_symlinkat,
            [other, CWD, path, 0, 0, 0],
        ),
        (
            SYS_rename,
            [path, other, 0, 0, 0, 0],
            SYS_renameat,
            [CWD, path, CWD, other, 0, 0],
        ),
        (
            SYS_rename,
            [path, other, 0, 0, 0, 0],
            SYS_renameat2,
            [CWD, path, CWD, other, 0, 0],
        ),
        (
            SYS_link,
            [path, other, 0, 0, 0, 0],
            SYS_linkat,
            [CWD, path, CWD, other, 0, 0],
        ),
    ];
    for (legacy, legacy_args, at, at_args) in pairs {
        let decoded = decode(legacy, legacy_args);
        assert_eq!(decoded, decode(at, at_args), "syscall {legacy}");
        assert!(!matches!(decoded, Call::Other(_)), "syscall {legacy}");
    }
}

#[test]
fn arguments_land_in_their_fields() {
    assert_eq!(
        decode(libc::SYS_openat, [7, 0x10, 0x241, 0o644, 9, 9]),
        Call::Open {
            dir: Base::Fd(7),
            path: UserPtr(0x10),
            flags: 0x241,
            mode: 0o644
        }
    );
    assert_eq!(
        decode(libc::SYS_renameat2, [CWD, 1, 5, 2, 2, 9]),
        Call::Rename {
            from_dir: Base::Cwd,
            from: UserPtr(1),
            to_dir: Base::Fd(5),
            to: UserPtr(2),
            flags: libc::RENAME_EXCHANGE
        }
    );
    // renameat has no flags argument: whatever is in the register is not a flag.
    assert!(matches!(
        decode(libc::SYS_renameat, [CWD, 1, CWD, 2, 2, 9]),
        Call::Rename { flags: 0, .. }
    ));
    assert_eq!(
        decode(libc::SYS_execveat, [3, 0x10, 0x20, 0x30, 0x1000, 0]),
        Call::Exec {
            dir: Base::Fd(3),
            path: UserPtr(0x10),
            argv: UserPtr(0x20),
            envp: UserPtr(0x30),
            flags: libc::AT_EMPTY_PATH
        }
    );
    assert_eq!(
        decode(libc::SYS_execve, [0x10, 0x20, 0x30, 0, 0, 0]),
        Call::Exec {
            dir: Base::Cwd,
            path: UserPtr(0x10),
            argv: UserPtr(0x20),
            envp: UserPtr(0x30),
            flags: 0
        }
    );
    assert_eq!(
        decode(
            libc::SYS_unlinkat,
            [CWD, 0x10, libc::AT_REMOVEDIR as u64, 0, 0, 0]
        ),
        Call::Unlink {
            dir: Base::Cwd,
            path: UserPtr(0x10),
            remove_dir: true
        }
    );
    // A negative pid in a 64-bit register is read as the int the kernel reads.
    assert_eq!(
        decode(libc::SYS_kill, [(-1i64) as u64, 9, 0, 0, 0, 0]),
        Call::Kill { pid: -1, sig: 9 }
    );
    assert_eq!(
        decode(libc::SYS_pidfd_send_signal, [4, 15, 0x40, 0, 0, 0]),
        Call::PidfdSendSignal {
            pidfd: 4,
            sig: 15,
            info: UserPtr(0x40),
            flags: 0
        }
    );
    assert_eq!(decode(libc::SYS_umask, [0; 6]), Call::Umask);
    assert_eq!(
        decode(libc::SYS_getpid, [0; 6]),
        Call::Other(libc::SYS_getpid)
    );
}

#[test]
fn every_notified_number_has_a_call() {
    use crate::platform::linux::supervisor::filter::{rules, FilterOptions, Rule};
    let options = FilterOptions {
        supervise_reads: true,
    };
    for (nr, rule) in rules(options) {
        if matches!(rule, Rule::Notify | Rule::NotifyIfFlags { .. }) {
            assert!(
                !matches!(decode(nr, [0; 6]), Call::Other(_)),
                "syscall {nr} is notified but decodes to nothing"
            );
        }
    }
}
