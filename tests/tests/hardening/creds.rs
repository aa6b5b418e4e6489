//! Item 2: a root agent cannot make the supervisor step aside. With `SECBIT_NO_SETUID_FIXUP` and
//! another effective uid it keeps root's capabilities while its identity differs from the
//! supervisor's; that used to answer CONTINUE (the kernel redid the call, reading the path
//! again), so a second thread swapping a symlink between the check and the kernel's open wrote
//! a read-only file. The supervisor now performs the call itself, with the task's credentials.
//! (An unprivileged supervisor's tasks cannot change identity: no_new_privs.)

use super::*;

/// Root, keeping its capabilities, becomes uid 65534 (dumpable again, so that /proc shows it),
/// then races: one thread exchanges `scratch/l` (-> ok) and `scratch/m` (-> ../ro) while the
/// main thread opens `scratch/l/config` for writing, up to `tries` times; when the read-only
/// `ro/config` was truncated it prints WON.
const RACER: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/securebits.h>

static volatile int stop;
static void *swapper(void *arg) {
    (void)arg;
    while (!stop) syscall(SYS_renameat2, AT_FDCWD, "scratch/l", AT_FDCWD, "scratch/m", 2 /* RENAME_EXCHANGE */);
    return 0;
}

int main(int argc, char **argv) {
    int tries = atoi(argv[1]);
    if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) != 0) { perror("securebits"); return 2; }
    if (setresuid(-1, 65534, -1) != 0) { perror("setresuid"); return 2; }
    prctl(PR_SET_DUMPABLE, 1);
    printf("EUID=%d\n", geteuid());
    pthread_t t;
    pthread_create(&t, 0, swapper, 0);
    for (int i = 0; i < tries; i++) {
        int fd = open("scratch/l/config", O_WRONLY | O_TRUNC);
        if (fd >= 0) close(fd);
        struct stat st;
        if (stat("ro/config", &st) == 0 && st.st_size == 0) {
            printf("WON after %d\n", i + 1);
            break;
        }
    }
    stop = 1;
    pthread_join(t, 0);
    fflush(stdout);
    return 0;
}
"#;

#[test]
fn a_root_agent_with_another_identity_cannot_win_the_path_swap_race() {
    if !is_root() {
        eprintln!("note: not root: an unprivileged agent cannot change identity (no_new_privs)");
        return;
    }
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let racer = compile(&s, "racer", RACER);
        std::fs::create_dir_all(s.path("scratch/ok")).unwrap();
        std::fs::write(s.path("scratch/ok/config"), "mine\n").unwrap();
        std::os::unix::fs::symlink("ok", s.path("scratch/l")).unwrap();
        std::os::unix::fs::symlink("../ro", s.path("scratch/m")).unwrap();
        let out = agent_in(&s, mode, &format!("{} 4000", racer.display()));
        let all = text(&out);
        assert!(stdout(&out).contains("EUID=65534"), "{mode:?}: {all}");
        assert!(!stdout(&out).contains("WON"), "{mode:?}: {all}");
        assert_eq!(
            std::fs::read_to_string(s.path("ro/config")).unwrap(),
            "setting=1\n",
            "{mode:?}: {all}"
        );
    }
}

/// Root keeping its capabilities as uid 65534 creates a file and a directory in a directory of
/// its own: they are 65534's, as the kernel would make them (the supervisor acted as the task,
/// not as itself).
const CREATOR: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/securebits.h>

int main(void) {
    if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) != 0) { perror("securebits"); return 2; }
    if (setresuid(-1, 65534, -1) != 0) { perror("setresuid"); return 2; }
    prctl(PR_SET_DUMPABLE, 1);
    int fd = open("scratch/made", O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) { perror("open"); return 1; }
    if (mkdir("scratch/dir", 0755) != 0) { perror("mkdir"); return 1; }
    /* Root's capabilities are kept: a root-only directory is still writable. */
    fd = open("scratch/root-only/f", O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) { perror("open root-only"); return 1; }
    puts("MADE");
    return 0;
}
"#;

#[test]
fn what_a_root_agent_creates_under_another_identity_is_that_identity_s() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        eprintln!("note: not root: an unprivileged agent cannot change identity (no_new_privs)");
        return;
    }
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let creator = compile(&s, "creator", CREATOR);
        std::fs::create_dir_all(s.path("scratch/root-only")).unwrap();
        std::fs::set_permissions(
            s.path("scratch/root-only"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let out = agent_in(&s, mode, &creator.display().to_string());
        let all = text(&out);
        assert!(stdout(&out).contains("MADE"), "{mode:?}: {all}");
        for made in ["scratch/made", "scratch/dir", "scratch/root-only/f"] {
            let meta = std::fs::metadata(s.path(made)).unwrap();
            assert_eq!(meta.uid(), 65534, "{mode:?}: {made}: {all}");
        }
    }
}
