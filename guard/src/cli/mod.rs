//! The command-line interface, one file per subcommand. (Placeholder from the audit branch: the
//! lead's cli/mod.rs replaces it and keeps these two lines.)

pub mod audit;
pub mod denials;
