//! The `agent-guard` binary: parse the command line, run the subcommand, exit with its code.

fn main() {
    // Printing into a closed pipe (`agent-guard denials | head`) should end quietly, as other
    // Unix tools do, not panic.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = agent_guard::cli::main_with(std::env::args_os().collect());
    std::process::exit(code);
}
