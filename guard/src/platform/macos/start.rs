//! The errors that stop the daemon at start, each with the one thing the user must do.
//!
//! `es_new_client` fails for reasons only the user can fix (a missing entitlement, no Full Disk
//! Access, not root). `agent-guard daemon` prints the sentence and exits with [`StartError::exit_code`];
//! launchd's log then says what to do rather than restarting a daemon that cannot start.
//!
//! The entitlement lives only on the daemon's copy in its app bundle (nix/darwin-module.nix,
//! docs/macos.md): the `agent-guard` command on PATH never carries it, so its `daemon`
//! subcommand meets [`StartError::NotEntitled`], whose advice points to the bundle.

/// Why the ES clients could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("this agent-guard is not signed with the Endpoint Security entitlement: the agent-guard command on PATH never is, so run the daemon from its signed bundle, /Library/Application Support/agent-guard/AgentGuard.app/Contents/MacOS/agent-guard daemon, or as the LaunchDaemon com.agent-guard.daemon (to sign the bundle with entitlements/es.entitlements and, with SIP on, an Apple-granted provisioning profile, see docs/macos.md)")]
    NotEntitled,
    #[error("agent-guard has no Full Disk Access: under launchd, allow AgentGuard.app (/Library/Application Support/agent-guard) in System Settings > Privacy & Security > Full Disk Access or install entitlements/agent-guard-fda.mobileconfig through MDM; started from a terminal with sudo, macOS asks the app responsible for it instead, so allow Terminal, iTerm or sshd there; then restart the daemon (an ad hoc signed daemon loses the grant at every update)")]
    NotPermitted,
    #[error("agent-guard daemon must run as root: start it with sudo or as the LaunchDaemon com.agent-guard.daemon")]
    NotPrivileged,
    #[error("too many Endpoint Security clients are running: stop another security agent or an older agent-guard/codex-es-guard daemon, then restart this one")]
    TooManyClients,
    #[error("Endpoint Security rejected the client ({0}): this is a bug in agent-guard, please report it with the macOS version")]
    Rejected(String),
    #[error("agent-guard daemon needs macOS 13 or later, this is macOS {0}: upgrade macOS or use `agent-guard run` on Linux")]
    UnsupportedOs(String),
    #[error("could not set up the daemon ({0}): check the system log for Endpoint Security errors and restart the daemon")]
    Setup(String),
    #[error("an Endpoint Security thread stopped unexpectedly ({0}): launchd restarts the daemon by itself, report it if it repeats")]
    ThreadFailed(String),
}

impl StartError {
    /// Whether starting again cannot succeed until someone acts: signs the daemon, grants Full
    /// Disk Access, runs it as root, upgrades macOS. (Too many clients, a rejected client or a
    /// failed thread may pass: those are worth a restart.)
    pub fn needs_someone(&self) -> bool {
        matches!(
            self,
            StartError::NotEntitled
                | StartError::NotPermitted
                | StartError::NotPrivileged
                | StartError::UnsupportedOs(_)
        )
    }

    /// The process exit status. Under launchd (parent pid 1) the LaunchDaemon's KeepAlive
    /// (`SuccessfulExit = false`) restarts the daemon after any non-zero exit or crash and only
    /// exit 0 stops it, so an error a restart cannot fix exits 0 there, instead of failing again
    /// every ThrottleInterval; its sentence in daemon.log says what to do. From a terminal each
    /// error keeps its sysexits.h status.
    pub fn exit_code(&self) -> i32 {
        self.exit_code_under(std::os::unix::process::parent_id() == 1)
    }

    /// [`StartError::exit_code`] for a daemon whose parent is launchd (`under_launchd`) or not:
    /// 77 no permission, 78 configuration, 70 internal (sysexits.h), or 0 under launchd for
    /// what [`StartError::needs_someone`].
    pub fn exit_code_under(&self, under_launchd: bool) -> i32 {
        if under_launchd && self.needs_someone() {
            return 0;
        }
        match self {
            StartError::NotEntitled | StartError::NotPermitted | StartError::NotPrivileged => 77,
            StartError::UnsupportedOs(_) | StartError::TooManyClients => 78,
            StartError::Rejected(_) | StartError::Setup(_) | StartError::ThreadFailed(_) => 70,
        }
    }
}

/// `kern.osproductversion` ("14.5", "13.6.1") → (major, minor, patch).
pub fn parse_os_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().trim_end_matches('\0').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// The daemon's floor: inverted target-path muting exists since macOS 13.
pub fn check_os_version(text: &str) -> Result<(u64, u64, u64), StartError> {
    match parse_os_version(text) {
        Some(v) if v.0 >= 13 => Ok(v),
        _ => Err(StartError::UnsupportedOs(text.trim().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_one_actionable_sentence() {
        let all = [
            StartError::NotEntitled,
            StartError::NotPermitted,
            StartError::NotPrivileged,
            StartError::TooManyClients,
            StartError::Rejected("internal".into()),
            StartError::UnsupportedOs("12.7".into()),
            StartError::Setup("spawn failed".into()),
            StartError::ThreadFailed("panic".into()),
        ];
        for e in &all {
            let text = e.to_string();
            // One sentence: no full stop inside, a colon separating cause from remedy.
            assert!(!text.trim_end_matches('.').contains(". "), "{text}");
            assert!(text.contains(": "), "{text}");
            assert!(e.exit_code_under(false) != 0);
        }
        let not_entitled = StartError::NotEntitled.to_string();
        assert!(not_entitled.contains("AgentGuard.app/Contents/MacOS/agent-guard daemon"));
        assert!(not_entitled.contains("command on PATH never"));
        let no_fda = StartError::NotPermitted.to_string();
        assert!(no_fda.contains("Full Disk Access") && no_fda.contains("AgentGuard.app"));
        // From a terminal the grant belongs to the responsible app (eslogger(1)), and an ad hoc
        // grant does not survive an update (TCC keys ad hoc code by its cdhash).
        assert!(no_fda.contains("Terminal, iTerm or sshd"));
        assert!(no_fda.contains("ad hoc") && no_fda.contains("every update"));
        assert!(StartError::NotPrivileged.to_string().contains("root"));
    }

    #[test]
    fn launchd_restarts_only_what_a_restart_can_fix() {
        // launchd's KeepAlive { SuccessfulExit = false } stops restarting only after exit 0.
        let stop = [
            StartError::NotEntitled,
            StartError::NotPermitted,
            StartError::NotPrivileged,
            StartError::UnsupportedOs("12.7".into()),
        ];
        for e in &stop {
            assert_eq!(e.exit_code_under(true), 0, "{e:?}");
        }
        let restart = [
            StartError::TooManyClients,
            StartError::Rejected("internal".into()),
            StartError::Setup("spawn failed".into()),
            StartError::ThreadFailed("panic".into()),
        ];
        for e in &restart {
            assert_ne!(e.exit_code_under(true), 0, "{e:?}");
            assert_eq!(e.exit_code_under(true), e.exit_code_under(false));
        }
        // From a terminal, sysexits.h.
        assert_eq!(StartError::NotEntitled.exit_code_under(false), 77);
        assert_eq!(StartError::NotPermitted.exit_code_under(false), 77);
        assert_eq!(
            StartError::UnsupportedOs("12.7".into()).exit_code_under(false),
            78
        );
        assert_eq!(
            StartError::ThreadFailed("panic".into()).exit_code_under(false),
            70
        );
    }

    #[test]
    fn os_versions() {
        assert_eq!(parse_os_version("14.5"), Some((14, 5, 0)));
        assert_eq!(parse_os_version("13.6.1\n"), Some((13, 6, 1)));
        assert_eq!(parse_os_version("15"), Some((15, 0, 0)));
        assert_eq!(parse_os_version("15.0.1\0"), Some((15, 0, 1)));
        assert_eq!(parse_os_version("x.1"), None);
        assert_eq!(parse_os_version("1.2.3.4"), None);
        assert_eq!(
            check_os_version("12.7.4"),
            Err(StartError::UnsupportedOs("12.7.4".into()))
        );
        assert_eq!(check_os_version("26.1"), Ok((26, 1, 0)));
    }
}
