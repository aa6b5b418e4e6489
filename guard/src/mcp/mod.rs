//! `agent-guard mcp`: the closed loop as a Model Context Protocol server over stdio, so an
//! MCP-capable agent (Claude Code, Codex, Cursor, Gemini CLI) learns why it was blocked, asks
//! for an override and hears the answer through tool calls instead of shell commands.
//!
//! The protocol is the official Rust SDK's (`rmcp`); [`tools`] holds what each tool does, on the
//! same library calls as the CLI: the hook's selection of this agent's denials
//! ([`crate::feedback`]), `override request`'s validation and rate limit
//! ([`crate::overrides::request_from`]), `override status` ([`crate::overrides::request_state`])
//! and the engine's decision for `explain_path`.
//!
//! This module must never approve, deny or revoke an override, nor restore or purge what the
//! guard kept: it has no such tool, and the server runs in the agent's tree, where the kernel
//! refuses it the writes those would take anyway. It never trusts its input: arguments are
//! validated like the CLI's, and text read from agent-writable files is shown escaped.

pub mod tools;

use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

pub use tools::{ToolContext, ToolError};

/// How often `override_status` with `wait_seconds` looks again.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// What went wrong with the server itself (not with one tool call).
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("start the MCP server's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("MCP session on stdio: {0}")]
    Session(String),
}

/// The server: the tools, bound to one agent's context.
#[derive(Clone, Debug)]
pub struct GuardServer {
    ctx: ToolContext,
}

impl GuardServer {
    pub fn new(ctx: ToolContext) -> GuardServer {
        GuardServer { ctx }
    }

    async fn call(&self, name: &str, arguments: Value) -> Result<Value, ToolError> {
        if name != tools::OVERRIDE_STATUS {
            return tools::call(&self.ctx, name, arguments, now());
        }
        let args = tools::status_args(arguments)?;
        let deadline = Instant::now() + Duration::from_secs(args.wait_seconds);
        loop {
            let answer = tools::override_status(&self.ctx, &args.id, now())?;
            if !tools::is_pending(&answer) || Instant::now() >= deadline {
                return Ok(answer);
            }
            tokio::time::sleep(STATUS_POLL).await;
        }
    }
}

fn now() -> u64 {
    crate::vocab::time::unix_secs(std::time::SystemTime::now())
}

/// The tool list as `tools/list` gives it.
pub fn tool_list() -> Vec<Tool> {
    tools::definitions()
        .into_iter()
        .map(|(name, description, schema)| {
            let Value::Object(schema) = schema else {
                unreachable!("every input schema is a JSON object literal")
            };
            let read_only = name != tools::REQUEST_OVERRIDE;
            let mut annotations = ToolAnnotations::default();
            annotations.read_only_hint = Some(read_only);
            annotations.destructive_hint = Some(false);
            annotations.open_world_hint = Some(false);
            Tool::new(name, description, schema).with_annotations(annotations)
        })
        .collect()
}

impl ServerHandler for GuardServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "agent-guard",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(tools::INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tool_list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.map_or(Value::Null, Value::Object);
        // A refusal is a tool result the model reads (isError), not a protocol error, which
        // clients show as an opaque failure.
        let result = match self.call(&request.name, arguments).await {
            Ok(answer) => CallToolResult::success(vec![ContentBlock::text(
                serde_json::to_string_pretty(&answer).unwrap_or_default(),
            )]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
        };
        Ok(result.into())
    }
}

/// Serve `ctx`'s tools on stdin/stdout until the client closes stdin.
pub fn serve_stdio(ctx: ToolContext) -> Result<(), McpError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(McpError::Runtime)?;
    runtime.block_on(async {
        let running = GuardServer::new(ctx)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| McpError::Session(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| McpError::Session(e.to_string()))?;
        Ok(())
    })
}
