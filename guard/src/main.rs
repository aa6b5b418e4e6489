//! The `agent-guard` binary: parse the command line, run the subcommand, exit with its code.

use clap::Parser;

fn main() {
    // Printing into a closed pipe (`agent-guard denials | head`) should end quietly, as other
    // Unix tools do, not panic.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = agent_guard::cli::Cli::parse();
    let code = match agent_guard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-guard: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
