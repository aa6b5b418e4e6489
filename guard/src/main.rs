fn main() {
    std::process::exit(agent_guard_cli_placeholder());
}
fn agent_guard_cli_placeholder() -> i32 {
    0
}
