//! A scripted fake of a model API on 127.0.0.1, for driving the real agent clients (Claude Code,
//! Codex, Gemini CLI) in end-to-end tests: each model request gets the script's next turn, streamed as the
//! real API streams it, and every request is recorded so a test can read exactly what the model
//! was told after a tool call (the tool's result, hook context, reminders).
//!
//! Three wire formats, the ones the clients speak:
//! - [`Api::AnthropicMessages`]: `POST /v1/messages` (server-sent events `message_start`,
//!   `content_block_start/delta/stop`, `message_delta`, `message_stop`; tool calls as `tool_use`
//!   blocks with `input_json_delta`), plus `POST /v1/messages/count_tokens`.
//! - [`Api::OpenAiResponses`]: `POST /v1/responses` (events `response.created`,
//!   `response.output_item.done`, `response.completed`; tool calls as `function_call` items).
//! - [`Api::GeminiGenerateContent`]: `POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`
//!   (server-sent `data:` lines, each a `GenerateContentResponse`; tool calls as `functionCall`
//!   parts) and `POST /v1beta/models/MODEL:generateContent` (one JSON answer).
//!
//! Anything else is answered 404 and recorded, so an unexpected call shows up in
//! [`FakeModel::requests`] instead of hanging the client. Only std: a thread per connection is
//! plenty for one client at a time. It never listens on anything but loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

mod wire;
use wire::*;

/// Which model API the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Anthropic's Messages API (Claude Code).
    AnthropicMessages,
    /// OpenAI's Responses API (Codex).
    OpenAiResponses,
    /// Google's Gemini API, `generateContent` and its streamed form (Gemini CLI).
    GeminiGenerateContent,
}

/// One answer of the scripted model.
#[derive(Clone, Debug)]
pub enum Turn {
    /// The model says this and ends its turn.
    Text(String),
    /// The model calls a tool; the client runs it and sends the result in its next request.
    ToolCall { name: String, input: Value },
}

impl Turn {
    pub fn text(text: &str) -> Turn {
        Turn::Text(text.to_string())
    }

    /// A tool call, e.g. `Turn::tool("Bash", json!({"command": "rm notes.txt"}))` for Claude
    /// Code, `Turn::tool("exec_command", json!({"cmd": "rm notes.txt"}))` for Codex or
    /// `Turn::tool("run_shell_command", json!({"command": "rm notes.txt"}))` for Gemini CLI.
    pub fn tool(name: &str, input: Value) -> Turn {
        Turn::ToolCall {
            name: name.to_string(),
            input,
        }
    }
}

/// One HTTP request the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// What the client told the model about one tool call, read from the request that followed it.
#[derive(Clone, Debug, Default)]
pub struct Told {
    /// The tool's result as the model sees it (Anthropic `tool_result` content, OpenAI
    /// `function_call_output` output, Gemini `functionResponse` output or error, less its
    /// `<hook_context>` sections).
    pub result: String,
    /// Whether the result is an error: Anthropic's `is_error` flag, Gemini's `error` response
    /// (OpenAI has none).
    pub is_error: Option<bool>,
    /// Every other text the client added after the call: hook `additionalContext` (Gemini CLI's
    /// `<hook_context>` sections of the result), system reminders, developer messages.
    pub context: Vec<String>,
}

impl Told {
    /// The result and the context, one string, for `contains` checks and failure messages.
    pub fn all(&self) -> String {
        let mut s = self.result.clone();
        for c in &self.context {
            s.push_str("\n---\n");
            s.push_str(c);
        }
        s
    }
}

struct Shared {
    api: Api,
    script: Vec<Turn>,
    /// Index of the next turn to answer (may pass the script's end: see `turn_for`).
    next_turn: Mutex<usize>,
    requests: Mutex<Vec<Request>>,
    stopping: AtomicBool,
}

/// A running fake; stops when dropped.
pub struct FakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// A client that stalls mid-request must not keep a connection thread forever.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl FakeModel {
    /// Start a fake of `api` on 127.0.0.1 (a free port) answering `script` in order.
    pub fn start(api: Api, script: Vec<Turn>) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake model on 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            api,
            script,
            next_turn: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let conn_shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve_connection(stream, &conn_shared));
            }
        });
        FakeModel { addr, shared }
    }

    /// `http://127.0.0.1:PORT`, without a path: Claude Code's `ANTHROPIC_BASE_URL`, Gemini
    /// CLI's `GOOGLE_GEMINI_BASE_URL`; Codex's provider `base_url` is this plus `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The bodies of the model requests (the ones answered with a turn), in order: body `i` is
    /// what the client sent before turn `i` was answered.
    pub fn model_requests(&self) -> Vec<Value> {
        let api = self.shared.api;
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && is_turn_path(api, r.path_only()))
            .map(|r| r.json().expect("a model request body is JSON"))
            .collect()
    }

    /// The id the fake gave the tool call of turn `turn` (`toolu_fake_N` / `call_fake_N` /
    /// `gemini_fake_N`).
    pub fn call_id(&self, turn: usize) -> String {
        call_id(self.shared.api, turn)
    }

    /// What the model was told about the tool call of turn `turn`, read from the model request
    /// that followed it. Panics, listing what was received, when there is no such request or
    /// it does not carry that call's result.
    pub fn told_after(&self, turn: usize) -> Told {
        let requests = self.model_requests();
        let Some(next) = requests.get(turn + 1) else {
            panic!(
                "no model request after turn {turn}: {} model requests; all requests: {:?}",
                requests.len(),
                self.requests()
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
            );
        };
        let id = self.call_id(turn);
        let told = match self.shared.api {
            Api::AnthropicMessages => told_anthropic(next, &id),
            Api::OpenAiResponses => told_openai(next, &id),
            Api::GeminiGenerateContent => told_gemini(next, &id),
        };
        told.unwrap_or_else(|| {
            panic!("the request after turn {turn} has no result for {id}: {next}")
        })
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Whether `path` (without its query) asks `api` for a model turn.
fn is_turn_path(api: Api, path: &str) -> bool {
    match api {
        Api::AnthropicMessages => path == "/v1/messages",
        Api::OpenAiResponses => path == "/v1/responses",
        Api::GeminiGenerateContent => path
            .strip_prefix("/v1beta/models/")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(model, method)| {
                !model.is_empty()
                    && !model.contains('/')
                    && matches!(method, "generateContent" | "streamGenerateContent")
            }),
    }
}

fn call_id(api: Api, turn: usize) -> String {
    match api {
        Api::AnthropicMessages => format!("toolu_fake_{turn}"),
        Api::OpenAiResponses => format!("call_fake_{turn}"),
        Api::GeminiGenerateContent => format!("gemini_fake_{turn}"),
    }
}

/// Serve requests on one connection until the client closes it (keep-alive) or a streamed
/// answer ends it.
fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        shared.requests.lock().unwrap().push(request.clone());
        let client_closes = request
            .headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        match answer(&request, shared, &mut writer) {
            Ok(true) if !client_closes => {}
            _ => return,
        }
    }
}

/// Read one HTTP/1.1 request; `None` at end of stream or on a malformed one.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = header("content-length") {
        body = vec![0; len.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Write the answer to `request`; `Ok(true)` when the connection may serve another request.
fn answer(request: &Request, shared: &Shared, out: &mut impl Write) -> std::io::Result<bool> {
    let path = request.path_only();
    match (shared.api, request.method.as_str(), path) {
        (_, "POST", p) if is_turn_path(shared.api, p) => {
            let body = request.json().unwrap_or(Value::Null);
            let turn = {
                let mut next = shared.next_turn.lock().unwrap();
                *next += 1;
                *next - 1
            };
            let step = turn_for(shared, turn);
            match shared.api {
                Api::AnthropicMessages => anthropic_turn(out, &body, turn, &step),
                Api::OpenAiResponses => openai_turn(out, turn, &step),
                Api::GeminiGenerateContent => {
                    let streamed = p.ends_with(":streamGenerateContent");
                    gemini_turn(out, streamed, turn, &step)
                }
            }
        }
        (Api::AnthropicMessages, "POST", "/v1/messages/count_tokens") => {
            write_json(out, 200, &json!({"input_tokens": 1}))
        }
        (_, "HEAD", _) => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
            Ok(true)
        }
        _ => write_json(
            out,
            404,
            &json!({"type": "error", "error": {"type": "not_found_error",
                "message": format!("the fake model has no {} {}", request.method, path)}}),
        ),
    }
}

/// The script's turn `turn`; past its end, a text saying so, so that a client that asks more
/// often than the script expects ends its run instead of retrying (the test sees the extra
/// request in `model_requests`).
fn turn_for(shared: &Shared, turn: usize) -> Turn {
    shared.script.get(turn).cloned().unwrap_or_else(|| {
        Turn::Text(format!(
            "(fake model: the script has {} turns, this is request {})",
            shared.script.len(),
            turn + 1
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The fake's own wire behaviour, without a client: a turn request gets the scripted SSE
    /// stream and is recorded; an unknown path gets 404 and is recorded too.
    #[test]
    fn streams_the_script_and_records_requests() {
        let model = FakeModel::start(
            Api::AnthropicMessages,
            vec![Turn::tool("Bash", json!({"command": "rm x"}))],
        );
        let body = r#"{"model":"m","stream":true,"messages":[]}"#;
        let mut s = TcpStream::connect(model.addr).unwrap();
        write!(
            s,
            "POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("event: message_start"), "{answer}");
        assert!(answer.contains(r#""id":"toolu_fake_0""#), "{answer}");
        assert!(answer.contains(r#""stop_reason":"tool_use""#), "{answer}");
        // The streamed JSON pieces put back together are the scripted input.
        let partial: String = answer
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&partial).unwrap(),
            json!({"command": "rm x"})
        );

        let mut s = TcpStream::connect(model.addr).unwrap();
        write!(
            s,
            "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        let paths: Vec<String> = model.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/v1/messages?beta=true", "/v1/models"]);
        assert_eq!(model.model_requests().len(), 1);
    }

    #[test]
    fn told_after_reads_result_and_context_in_every_format() {
        let anthropic = json!({"messages": [
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_fake_0"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_fake_0",
                "content": "rm: Operation not permitted", "is_error": true}]},
            {"role": "system", "content": [{"type": "text", "text": "hook says why"}]}]});
        let told = told_anthropic(&anthropic, "toolu_fake_0").unwrap();
        assert_eq!(told.result, "rm: Operation not permitted");
        assert_eq!(told.is_error, Some(true));
        assert_eq!(told.context, ["hook says why"]);
        assert!(told_anthropic(&anthropic, "toolu_fake_9").is_none());

        let openai = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "do it"}]},
            {"type": "function_call", "call_id": "call_fake_0", "name": "exec_command"},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "hook says why"}]},
            {"type": "function_call_output", "call_id": "call_fake_0", "output": "Operation not permitted"}]});
        let told = told_openai(&openai, "call_fake_0").unwrap();
        assert_eq!(told.result, "Operation not permitted");
        assert_eq!(told.context, ["hook says why"]);
        assert!(!told.all().contains("do it"));

        let gemini = json!({"contents": [
            {"role": "user", "parts": [{"text": "do it"}]},
            {"role": "model", "parts": [{"functionCall": {"id": "gemini_fake_0", "name": "run_shell_command"}}]},
            {"role": "user", "parts": [{"functionResponse": {"id": "gemini_fake_0", "name": "run_shell_command",
                "response": {"output": "Exit Code: 1\n\n<hook_context>hook says why</hook_context>"}}}]},
            {"role": "model", "parts": [{"functionCall": {"id": "gemini_fake_1", "name": "write_file"}}]},
            {"role": "user", "parts": [{"functionResponse": {"id": "gemini_fake_1", "name": "write_file",
                "response": {"error": "EPERM"}}}, {"text": "a reminder"}]}]});
        let told = told_gemini(&gemini, "gemini_fake_0").unwrap();
        assert_eq!(told.result, "Exit Code: 1");
        assert_eq!(told.is_error, Some(false));
        assert_eq!(told.context[0], "hook says why");
        let told = told_gemini(&gemini, "gemini_fake_1").unwrap();
        assert_eq!(told.result, "EPERM");
        assert_eq!(told.is_error, Some(true));
        assert_eq!(told.context, ["a reminder"]);
        assert!(told_gemini(&gemini, "gemini_fake_9").is_none());
    }

    /// Gemini's two methods: `streamGenerateContent?alt=sse` gets `data:` chunks that put
    /// together make the scripted call, `generateContent` one JSON answer; other model methods
    /// and paths are not turns.
    #[test]
    fn gemini_turns_stream_and_answer_whole() {
        let model = FakeModel::start(
            Api::GeminiGenerateContent,
            vec![
                Turn::tool("run_shell_command", json!({"command": "rm x"})),
                Turn::text("all done"),
            ],
        );
        let post = |path: &str| {
            let body = r#"{"contents":[]}"#;
            let mut s = TcpStream::connect(model.addr).unwrap();
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            answer
        };
        let answer = post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
        assert!(answer.contains("text/event-stream"), "{answer}");
        let chunks: Vec<Value> = answer
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(chunks.len(), 1, "{answer}");
        let call = &chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"];
        assert_eq!(call["id"], "gemini_fake_0");
        assert_eq!(call["args"], json!({"command": "rm x"}));

        let answer = post("/v1beta/models/gemini-2.5-flash:generateContent");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let whole: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            whole["candidates"][0]["content"]["parts"],
            json!([{"text": "all done"}])
        );
        assert_eq!(whole["candidates"][0]["finishReason"], "STOP");

        assert!(post("/v1beta/models/gemini-2.5-flash:countTokens").starts_with("HTTP/1.1 404"));
        assert!(post("/v1beta/models:streamGenerateContent").starts_with("HTTP/1.1 404"));
        assert_eq!(model.model_requests().len(), 2);
    }
}
