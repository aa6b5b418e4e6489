//! macOS: the Endpoint Security client behind `agent-guard daemon`.
