//! Item 2 (devices): a disk read or written directly goes around every file and zone (a root
//! agent read a secret and unlinked a file with debugfs on a block device). Opening a block
//! device, by any name, and making any device node are refused; the everyday devices (null,
//! zero, urandom, shm, FIFOs) keep working.

use super::*;

/// A block device of this machine, if it has one.
fn some_block_device() -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut all: Vec<_> = std::fs::read_dir("/dev")
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_block_device()))
        .map(|e| e.path().display().to_string())
        .collect();
    all.sort();
    all.into_iter().next()
}

fn device_records(new: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    new.iter()
        .filter(|r| r["rule"] == "device" && r["decision"] == "deny")
        .collect()
}

#[test]
fn block_devices_cannot_be_opened_by_any_name() {
    let Some(disk) = some_block_device() else {
        eprintln!("note: no block device in /dev: nothing to test");
        return;
    };
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let before = s.denials().len();
        let out = agent_in(
            &s,
            mode,
            &format!(
                "D={disk}; head -c 16 $D > /dev/null && echo READ-DISK; \
                 mkdir -p scratch && ln -s $D scratch/disk && head -c 16 scratch/disk > /dev/null && echo READ-LINK; \
                 exec 7<$D && echo OPEN-FD7; \
                 python3 -c 'import os,sys; os.open(sys.argv[1], os.O_RDWR); print(\"OPEN-RW\")' $D; \
                 head -c 8 /dev/urandom | wc -c; head -c 4 /dev/zero | wc -c; echo ok > /dev/null && echo NULL-OK; \
                 echo shm > /dev/shm/ag-hard-$$ && cat /dev/shm/ag-hard-$$ && rm /dev/shm/ag-hard-$$; \
                 cat /etc/hostname > /dev/null && grep -q Name /proc/self/status && echo READS-OK"
            ),
        );
        let all = text(&out);
        for got in ["READ-DISK", "READ-LINK", "OPEN-FD7", "OPEN-RW"] {
            assert!(!stdout(&out).contains(got), "{mode:?}: {got}: {all}");
        }
        for ok in ["8\n4\nNULL-OK\nshm\n", "READS-OK"] {
            assert!(stdout(&out).contains(ok), "{mode:?}: {ok}: {all}");
        }
        // The supervisor sees a write-open in both modes, read-only opens when it supervises
        // them (in hidden mode the Landlock domain refuses those, without a record).
        let want = if mode == Mode::Supervised { 4 } else { 1 };
        let new = new_denials(&s, before, want);
        let records = device_records(&new);
        assert!(records.len() >= want, "{mode:?}: {new:#?}\n{all}");
        assert!(
            records.iter().all(|r| r["path"] == disk.as_str()),
            "{mode:?}: {records:#?}"
        );
    }
}

#[test]
fn device_nodes_cannot_be_made_but_fifos_and_sockets_can() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let before = s.denials().len();
        let out = agent_in(
            &s,
            mode,
            "mkdir -p scratch; mknod scratch/blk b 7 0 && echo MADE-BLK; \
             mknod scratch/chr c 1 3 && echo MADE-CHR; \
             python3 -c 'import os,stat; os.mknod(\"scratch/chr2\", stat.S_IFCHR|0o600, os.makedev(1,5)); print(\"MADE-CHR2\")'; \
             mkfifo scratch/fifo && echo FIFO-OK; \
             python3 -c 'import os,stat; os.mknod(\"scratch/plain\", stat.S_IFREG|0o600); print(\"PLAIN-OK\")'",
        );
        let all = text(&out);
        for got in ["MADE-BLK", "MADE-CHR", "MADE-CHR2"] {
            assert!(!stdout(&out).contains(got), "{mode:?}: {got}: {all}");
        }
        for name in ["blk", "chr", "chr2"] {
            assert!(
                !s.path(&format!("scratch/{name}")).exists(),
                "{mode:?}: {name}"
            );
        }
        assert!(stdout(&out).contains("FIFO-OK"), "{mode:?}: {all}");
        assert!(stdout(&out).contains("PLAIN-OK"), "{mode:?}: {all}");
        let new = new_denials(&s, before, 3);
        let made: Vec<_> = device_records(&new)
            .iter()
            .filter_map(|r| r["path"].as_str().map(str::to_owned))
            .collect();
        for name in ["blk", "chr", "chr2"] {
            let path = s.path(&format!("scratch/{name}")).display().to_string();
            assert!(made.contains(&path), "{mode:?}: {path}: {new:#?}");
        }
    }
}
