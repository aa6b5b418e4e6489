//! What an Endpoint Security message says about a process, copied into plain values: who it is
//! ([`ProcessIdentity`], [`ActorFacts`]) and how its code is signed ([`SigningInfo`]), with the
//! rules that decide which signing identity may be trusted ([`SigningInfo::trusted_ids`]).
//!
//! Plain data and pure functions: compiled and tested on every OS.

use std::path::{Path, PathBuf};

use crate::platform::macos::procinfo::MAXCOMLEN;
use crate::vocab::Actor;

/// A process as Endpoint Security names it: pid plus pidversion (from the audit token). The
/// pidversion changes on every exec and pid reuse, so the pair never names two processes; it is
/// how the daemon recognizes itself in a signal's target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub pidversion: i32,
}

/// Code-signing flags of `es_process_t.codesigning_flags` (XNU `osfmk/kern/cs_blobs.h`).
pub mod cs {
    /// The signature is valid (cleared when a page fails validation).
    pub const VALID: u32 = 0x0000_0001;
    /// Ad hoc signed: no certificate, anyone can make one with `codesign -s -`.
    pub const ADHOC: u32 = 0x0000_0002;
    /// Part of the OS (in the trust cache).
    pub const PLATFORM_BINARY: u32 = 0x0400_0000;
    /// Has a signature at all.
    pub const SIGNED: u32 = 0x2000_0000;
}

/// The prefix of Apple's own signing identifiers.
const APPLE_PREFIX: &str = "com.apple.";

/// The code-signing facts ES gives with every process (no `codesign` subprocess).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningInfo {
    /// e.g. `com.apple.git`, as ES reports it: ad hoc code has one too (`codesign -s - -i X`
    /// sets any), so it means nothing without [`SigningInfo::trusted_ids`].
    pub signing_id: Option<String>,
    /// Apple team identifier; `None` for platform binaries and ad hoc signatures.
    pub team_id: Option<String>,
    pub cdhash: [u8; 20],
    /// Signed by Apple as part of the OS (`is_platform_binary`).
    pub platform_binary: bool,
    /// `codesigning_flags` ([`cs`]).
    pub cs_flags: u32,
}

impl SigningInfo {
    /// The signing and team identifiers a rule may trust, or `None` for each that proves nothing.
    /// Santa's rule: nothing from ad hoc, unsigned or invalid code; an Apple signing identifier
    /// (`com.apple.*`) only for a platform binary, which only Apple can make; any other signing
    /// identifier only together with the team that signed it (the policy must name that team, see
    /// `TrustedTool::identifies`), since any developer can sign code with any identifier.
    pub fn trusted_ids(&self) -> (Option<String>, Option<String>) {
        let genuine = self.cs_flags & (cs::SIGNED | cs::VALID) == cs::SIGNED | cs::VALID
            && self.cs_flags & cs::ADHOC == 0;
        if !genuine {
            return (None, None);
        }
        let team = self.team_id.clone().filter(|t| !t.is_empty());
        match &self.signing_id {
            Some(id) if id.starts_with(APPLE_PREFIX) => {
                if self.platform_binary {
                    (Some(id.clone()), team)
                } else {
                    (None, team)
                }
            }
            Some(id) if team.is_some() => (Some(id.clone()), team),
            _ => (None, team),
        }
    }

    /// The program a platform binary is, by its signing identifier: `com.apple.xpc.launchctl` is
    /// `launchctl` whatever its file is called. `None` for anything not Apple's platform code
    /// (whose identifier anyone can choose).
    pub fn platform_program(&self) -> Option<&str> {
        let id = self.signing_id.as_deref()?;
        if !id.starts_with(APPLE_PREFIX) || self.trusted_ids().0.is_none() {
            return None;
        }
        id.rsplit('.').next().filter(|name| !name.is_empty())
    }
}

/// What a message says about a process, beyond the neutral [`Actor`].
///
/// argv\[0\] is not here: reading it costs a `sysctl`, so the daemon reads it only for actors it
/// must attribute or re-check (Node CLIs rewrite it after exec).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActorFacts {
    pub process: ProcessIdentity,
    /// The process's start time (fork time) in microseconds since the epoch. Unlike the
    /// pidversion it does not change at exec, and with the pid it names one process for its
    /// whole life: the lineage key.
    pub start_micros: u64,
    /// Current parent pid (1 after reparenting).
    pub ppid: i32,
    /// Parent pid at fork, before any reparenting to launchd.
    pub original_ppid: i32,
    /// The parent's identity as ES reports it (message version 4+, macOS 11+).
    pub parent: Option<ProcessIdentity>,
    /// The process macOS holds responsible (e.g. the app that launched a helper); may be the
    /// process itself.
    pub responsible: Option<ProcessIdentity>,
    /// The executable it runs now.
    pub exe: PathBuf,
    pub signing: SigningInfo,
}

impl ActorFacts {
    /// The neutral actor: its executable, its short name, and the signing identity only where
    /// [`SigningInfo::trusted_ids`] trusts it.
    pub fn actor(&self) -> Actor {
        let (signing_id, team_id) = self.signing.trusted_ids();
        Actor {
            pid: self.process.pid,
            comm: comm_of(&self.exe),
            exe: self.exe.clone(),
            argv0: String::new(),
            args: Vec::new(),
            signing_id,
            team_id,
        }
    }
}

/// The basename of an executable cut to the kernel's `MAXCOMLEN` (16 bytes), which is how XNU
/// sets `p_comm` at exec (`process.title` does not change it).
pub fn comm_of(exe: &Path) -> String {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(MAXCOMLEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: u32 = cs::SIGNED | cs::VALID;

    fn signed(id: &str, team: Option<&str>, platform: bool, flags: u32) -> SigningInfo {
        SigningInfo {
            signing_id: Some(id.into()),
            team_id: team.map(Into::into),
            platform_binary: platform,
            cs_flags: flags | if platform { cs::PLATFORM_BINARY } else { 0 },
            ..SigningInfo::default()
        }
    }

    #[test]
    fn comm_is_basename_cut_to_maxcomlen() {
        assert_eq!(comm_of(Path::new("/usr/bin/git")), "git");
        assert_eq!(
            comm_of(Path::new("/x/a-very-long-executable-name")),
            "a-very-long-exec"
        );
        // A multi-byte character straddling byte 16 is dropped, not split.
        assert_eq!(comm_of(Path::new("/x/aaaaaaaaaaaaaaaé")), "aaaaaaaaaaaaaaa");
        assert_eq!(comm_of(Path::new("/")), "");
    }

    #[test]
    fn an_apple_signing_id_counts_only_for_a_platform_binary() {
        let git = signed("com.apple.git", None, true, PRODUCTION);
        assert_eq!(git.trusted_ids(), (Some("com.apple.git".into()), None));
        // `codesign -s - -i com.apple.git ./x`: ad hoc, not platform.
        let forged = signed("com.apple.git", None, false, PRODUCTION | cs::ADHOC);
        assert_eq!(forged.trusted_ids(), (None, None));
        // Even with a real certificate, a third party's "com.apple.git" is not Apple's git.
        let developer = signed("com.apple.git", Some("ABCDE12345"), false, PRODUCTION);
        assert_eq!(developer.trusted_ids(), (None, Some("ABCDE12345".into())));
        // A platform flag with an ad hoc signature is nonsense; ad hoc wins.
        let odd = signed("com.apple.git", None, true, PRODUCTION | cs::ADHOC);
        assert_eq!(odd.trusted_ids(), (None, None));
    }

    #[test]
    fn other_signing_ids_count_only_with_their_team_and_valid_signatures() {
        let tool = signed("com.example.tool", Some("ABCDE12345"), false, PRODUCTION);
        assert_eq!(
            tool.trusted_ids(),
            (Some("com.example.tool".into()), Some("ABCDE12345".into()))
        );
        let teamless = signed("com.example.tool", None, false, PRODUCTION);
        assert_eq!(teamless.trusted_ids(), (None, None));
        let invalid = signed("com.example.tool", Some("ABCDE12345"), false, cs::SIGNED);
        assert_eq!(invalid.trusted_ids(), (None, None));
        let unsigned = SigningInfo::default();
        assert_eq!(unsigned.trusted_ids(), (None, None));
    }

    #[test]
    fn a_platform_binary_is_the_program_its_signing_id_names() {
        let launchctl = signed("com.apple.xpc.launchctl", None, true, PRODUCTION);
        assert_eq!(launchctl.platform_program(), Some("launchctl"));
        let forged = signed(
            "com.apple.xpc.launchctl",
            None,
            false,
            PRODUCTION | cs::ADHOC,
        );
        assert_eq!(forged.platform_program(), None);
        let third_party = signed("com.example.launchctl", Some("T"), false, PRODUCTION);
        assert_eq!(third_party.platform_program(), None);
    }

    #[test]
    fn the_neutral_actor_carries_only_trusted_ids() {
        let facts = ActorFacts {
            process: ProcessIdentity {
                pid: 7,
                pidversion: 2,
            },
            exe: PathBuf::from("/tmp/x"),
            signing: signed("com.apple.git", None, false, PRODUCTION | cs::ADHOC),
            ..ActorFacts::default()
        };
        let actor = facts.actor();
        assert_eq!(actor.pid, 7);
        assert_eq!(actor.comm, "x");
        assert_eq!(actor.signing_id, None);
        assert_eq!(actor.team_id, None);
    }
}
