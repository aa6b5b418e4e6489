//! The errors that stop the daemon at start, each with the one thing the user must do.
//!
//! `es_new_client` fails for reasons only the user can fix (a missing entitlement, no Full Disk
//! Access, not root). `agent-guard daemon` prints the sentence and exits non-zero; launchd's log
//! then says what to do rather than just restarting a crashing daemon.

/// Why the ES clients could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("agent-guard is not signed with the Endpoint Security entitlement: codesign it with entitlements/es.entitlements (com.apple.developer.endpoint-security.client) and, unless SIP is disabled for local testing, an Apple-granted provisioning profile")]
    NotEntitled,
    #[error("agent-guard has no Full Disk Access: allow /usr/local/bin/agent-guard in System Settings > Privacy & Security > Full Disk Access (or install entitlements/agent-guard-fda.mobileconfig through MDM), then restart the daemon")]
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
    /// The process exit status for this error (sysexits.h: 77 no permission, 78 configuration,
    /// 70 internal).
    pub fn exit_code(&self) -> i32 {
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
            assert!(e.exit_code() != 0);
        }
        assert!(StartError::NotPermitted
            .to_string()
            .contains("Full Disk Access"));
        assert!(StartError::NotEntitled
            .to_string()
            .contains("es.entitlements"));
        assert!(StartError::NotPrivileged.to_string().contains("root"));
        assert_eq!(StartError::NotPermitted.exit_code(), 77);
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
