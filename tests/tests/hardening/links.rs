//! Item 6: `linkat(fd, "", new, AT_EMPTY_PATH)` links the object that was judged. It used to be
//! judged on the fd's file and then performed through `/proc/TID/fd/N`, which looks the slot up
//! again: a second thread dup2'ing a read-only file into the slot got a writable new name for
//! it. And in hidden mode every such link failed with EXDEV (the fd's file is on a mount of the
//! agent's namespace), harmless ones too.

use super::*;

/// One thread swaps `ro/config` (read-only zone, opened for reading) and a harmless file into
/// fd 100 while the main thread links fd 100 as `scratch/alias-N`, `tries` times. Prints how
/// many links were made and whether one of them is `ro/config`'s inode (ALIASED).
const SWAPPER: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile int stop;
static int harmless, guarded;
static void *swap(void *arg) {
    (void)arg;
    while (!stop) { dup2(harmless, 100); dup2(guarded, 100); }
    return 0;
}

int main(int argc, char **argv) {
    int tries = atoi(argv[1]);
    harmless = open("scratch/harmless", O_RDONLY);
    guarded = open("ro/config", O_RDONLY);
    if (harmless < 0 || guarded < 0) { perror("open"); return 2; }
    struct stat ro; fstat(guarded, &ro);
    dup2(harmless, 100);
    pthread_t t;
    pthread_create(&t, 0, swap, 0);
    int made = 0, aliased = 0;
    char name[64];
    for (int i = 0; i < tries && !aliased; i++) {
        snprintf(name, sizeof name, "scratch/alias-%d", i);
        if (linkat(100, "", AT_FDCWD, name, AT_EMPTY_PATH) == 0) {
            made++;
            struct stat st;
            if (stat(name, &st) == 0 && st.st_ino == ro.st_ino && st.st_dev == ro.st_dev) aliased = 1;
        }
    }
    stop = 1;
    pthread_join(t, 0);
    printf("MADE %d\n", made);
    if (aliased) printf("ALIASED\n");
    return 0;
}
"#;

#[test]
fn a_link_of_an_fd_links_the_file_that_was_judged() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let swapper = compile(&s, "swapper", SWAPPER);
        std::fs::create_dir_all(s.path("scratch")).unwrap();
        std::fs::write(s.path("scratch/harmless"), "harmless\n").unwrap();
        let out = agent_in(&s, mode, &format!("{} 3000", swapper.display()));
        let all = text(&out);
        assert!(!stdout(&out).contains("ALIASED"), "{mode:?}: {all}");
        // The harmless file was linked (in hidden mode too: no EXDEV).
        assert!(!stdout(&out).contains("MADE 0\n"), "{mode:?}: {all}");
        assert!(stdout(&out).contains("MADE "), "{mode:?}: {all}");
    }
}

/// The everyday use: an O_TMPFILE written then given a name (with AT_EMPTY_PATH, and through
/// `/proc/self/fd/N` as open(2) shows), and a plain file's fd linked.
const MATERIALIZE: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
fd = os.open("scratch", os.O_TMPFILE | os.O_WRONLY, 0o644)
os.write(fd, b"made in the dark\n")
r = libc.linkat(fd, b"", AT_FDCWD, b"scratch/materialized", AT_EMPTY_PATH)
print("TMPFILE", r, ctypes.get_errno())
fd = os.open("scratch", os.O_TMPFILE | os.O_WRONLY, 0o644)
os.write(fd, b"named through proc\n")
AT_SYMLINK_FOLLOW = 0x400
r = libc.linkat(AT_FDCWD, b"/proc/self/fd/%d" % fd, AT_FDCWD, b"scratch/via-proc", AT_SYMLINK_FOLLOW)
print("PROC", r, ctypes.get_errno())
fd = os.open("scratch/plain", os.O_RDONLY)
r = libc.linkat(fd, b"", AT_FDCWD, b"scratch/plain-again", AT_EMPTY_PATH)
print("PLAIN", r, ctypes.get_errno())
"#;

#[test]
fn linking_an_fd_works_in_every_mode() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        std::fs::write(s.root.join("materialize.py"), MATERIALIZE).unwrap();
        std::fs::create_dir_all(s.path("scratch")).unwrap();
        std::fs::write(s.path("scratch/plain"), "plain\n").unwrap();
        let out = agent_in(
            &s,
            mode,
            &format!("python3 {}", s.root.join("materialize.py").display()),
        );
        let all = text(&out);
        assert!(stdout(&out).contains("TMPFILE 0 0"), "{mode:?}: {all}");
        assert!(stdout(&out).contains("PLAIN 0 0"), "{mode:?}: {all}");
        assert!(stdout(&out).contains("PROC 0 0"), "{mode:?}: {all}");
        assert_eq!(
            std::fs::read_to_string(s.path("scratch/via-proc")).unwrap(),
            "named through proc\n"
        );
        assert_eq!(
            std::fs::read_to_string(s.path("scratch/materialized")).unwrap(),
            "made in the dark\n"
        );
        assert_eq!(
            std::fs::read_to_string(s.path("scratch/plain-again")).unwrap(),
            "plain\n"
        );
    }
}
