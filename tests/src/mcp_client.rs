//! A minimal MCP client for the tests: JSON-RPC over a server's stdio, one message a line, as
//! Claude Code, Codex and the inspector speak to `agent-guard mcp`; and the reading of a
//! `tools/call` result, shared with the tests that drive a real client.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

use crate::LIVENESS;

/// A JSON-RPC session with one MCP server process (its stderr goes to the test's).
pub struct McpSession {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
    /// The server's answer to `initialize`.
    pub initialized: Value,
}

impl McpSession {
    /// Start `cmd` and go through the handshake (`initialize`, `notifications/initialized`).
    pub fn start(cmd: &mut Command) -> McpSession {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the MCP server {cmd:?}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut session = McpSession {
            child,
            stdin,
            lines,
            next_id: 1,
            initialized: Value::Null,
        };
        session.initialized = session.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "agent-guard-e2e", "version": "0"}
            }),
        );
        session.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        session
    }

    pub fn send(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Send a request and return the response with its id (notifications in between skipped).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = self
                .lines
                .recv_timeout(LIVENESS * 6)
                .unwrap_or_else(|e| panic!("no answer to {method} (id {id}): {e}"));
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout must carry JSON-RPC only: {line:?}: {e}"));
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// `tools/call`: the tool's answer and `isError` (see [`tool_answer`]).
    pub fn call(&mut self, tool: &str, arguments: Value) -> (Value, bool) {
        let response = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        let result = &response["result"];
        assert!(result.is_object(), "{tool}: {response}");
        tool_answer(result)
    }

    /// Close stdin: the server must exit 0.
    pub fn close(mut self) {
        drop(self.stdin);
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the MCP server exited with {status}");
                return;
            }
            if start.elapsed() > LIVENESS {
                let _ = self.child.kill();
                panic!("the MCP server did not exit when its stdin closed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The answer in a `tools/call` result: its first text content, parsed as JSON when it is
/// JSON (else the text as a string), and whether the result says `isError`.
pub fn tool_answer(result: &Value) -> (Value, bool) {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    let answer = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()));
    (answer, result["isError"] == json!(true))
}
