//! The three wire formats the fake speaks: the answers it streams (Anthropic Messages events,
//! OpenAI Responses events, Gemini `GenerateContentResponse` chunks) and what it reads back of a
//! request after a tool call.

use std::io::Write;

use serde_json::{json, Value};

use super::{call_id, Api, Told, Turn};

pub(super) fn write_json(out: &mut impl Write, status: u16, body: &Value) -> std::io::Result<bool> {
    let body = body.to_string();
    let reason = if status == 200 { "OK" } else { "Not Found" };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()?;
    Ok(true)
}

/// Start a server-sent event stream; it ends when the connection closes.
pub(super) fn start_events(out: &mut impl Write) -> std::io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )
}

pub(super) fn event(out: &mut impl Write, name: &str, data: &Value) -> std::io::Result<()> {
    write!(out, "event: {name}\ndata: {data}\n\n")
}

pub(super) fn anthropic_turn(
    out: &mut impl Write,
    request: &Value,
    turn: usize,
    step: &Turn,
) -> std::io::Result<bool> {
    let model = request["model"].as_str().unwrap_or("claude-fake");
    let (block, stop_reason) = match step {
        Turn::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
        Turn::ToolCall { name, input } => (
            json!({"type": "tool_use", "id": call_id(Api::AnthropicMessages, turn), "name": name, "input": input}),
            "tool_use",
        ),
    };
    let usage = json!({"input_tokens": 10, "output_tokens": 5});
    if request["stream"] != Value::Bool(true) {
        let message = json!({"id": format!("msg_fake_{turn}"), "type": "message", "role": "assistant",
            "model": model, "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage});
        write_json(out, 200, &message)?;
        return Ok(true);
    }
    start_events(out)?;
    event(
        out,
        "message_start",
        &json!({"type": "message_start", "message": {"id": format!("msg_fake_{turn}"), "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    )?;
    // The block starts empty and its content arrives in deltas, in two pieces, as the real API
    // streams it.
    let (start, deltas) = match step {
        Turn::Text(text) => (
            json!({"type": "text", "text": ""}),
            halves(text)
                .into_iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect::<Vec<_>>(),
        ),
        Turn::ToolCall { name, input } => (
            json!({"type": "tool_use", "id": call_id(Api::AnthropicMessages, turn), "name": name, "input": {}}),
            halves(&input.to_string())
                .into_iter()
                .map(|j| json!({"type": "input_json_delta", "partial_json": j}))
                .collect(),
        ),
    };
    event(
        out,
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": start}),
    )?;
    for delta in deltas {
        event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        )?;
    }
    event(
        out,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    )?;
    event(
        out,
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
    )?;
    event(out, "message_stop", &json!({"type": "message_stop"}))?;
    out.flush()?;
    Ok(false)
}

pub(super) fn openai_turn(out: &mut impl Write, turn: usize, step: &Turn) -> std::io::Result<bool> {
    let id = format!("resp_fake_{turn}");
    let item = match step {
        Turn::Text(text) => {
            json!({"type": "message", "role": "assistant", "id": format!("msg_fake_{turn}"),
            "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
        Turn::ToolCall { name, input } => {
            let mut item = json!({"type": "function_call", "id": format!("fc_fake_{turn}"),
            "call_id": call_id(Api::OpenAiResponses, turn), "name": name,
            "arguments": input.to_string()});
            // A tool of a namespace (Codex puts each MCP server's tools in one): `NS/TOOL`.
            if let Some((namespace, tool)) = name.split_once('/') {
                item["namespace"] = json!(namespace);
                item["name"] = json!(tool);
            }
            item
        }
    };
    start_events(out)?;
    event(
        out,
        "response.created",
        &json!({"type": "response.created", "response": {"id": id}}),
    )?;
    event(
        out,
        "response.output_item.done",
        &json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
    )?;
    event(
        out,
        "response.completed",
        &json!({"type": "response.completed", "response": {"id": id, "usage": {
            "input_tokens": 10, "input_tokens_details": null, "output_tokens": 5,
            "output_tokens_details": null, "total_tokens": 15}}}),
    )?;
    out.flush()?;
    Ok(false)
}

/// Gemini: the answer to `generateContent` (one JSON object) or `streamGenerateContent?alt=sse`
/// (`data:` lines, one `GenerateContentResponse` each, the connection closed after the last).
/// A text arrives in two chunks, as the real API streams it; a function call whole, in one.
/// The call carries the fake's id, which Gemini CLI keeps and returns in its `functionResponse`.
pub(super) fn gemini_turn(
    out: &mut impl Write,
    streamed: bool,
    turn: usize,
    step: &Turn,
) -> std::io::Result<bool> {
    let chunk = |parts: Value, last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut chunk = json!({"candidates": [], "modelVersion": "gemini-fake",
            "responseId": format!("gemini_response_{turn}")});
        if last {
            candidate["finishReason"] = json!("STOP");
            chunk["usageMetadata"] =
                json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15});
        }
        chunk["candidates"] = json!([candidate]);
        chunk
    };
    let pieces: Vec<Value> = match step {
        Turn::Text(text) => halves(text)
            .into_iter()
            .map(|t| json!([{"text": t}]))
            .collect(),
        Turn::ToolCall { name, input } => vec![json!([{"functionCall": {
            "id": call_id(Api::GeminiGenerateContent, turn), "name": name, "args": input}}])],
    };
    if !streamed {
        let whole = match step {
            Turn::Text(text) => json!([{"text": text}]),
            Turn::ToolCall { .. } => pieces[0].clone(),
        };
        return write_json(out, 200, &chunk(whole, true));
    }
    start_events(out)?;
    let n = pieces.len();
    for (i, parts) in pieces.into_iter().enumerate() {
        write!(out, "data: {}\r\n\r\n", chunk(parts, i + 1 == n))?;
    }
    out.flush()?;
    Ok(false)
}

/// `s` cut in two at a character boundary near its middle.
pub(super) fn halves(s: &str) -> Vec<&str> {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    vec![&s[..mid], &s[mid..]]
}

/// The text of a content value: a string, or an array of blocks whose text parts are joined.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Anthropic: the `tool_result` for `id` and every text in the messages from it on.
pub(super) fn told_anthropic(request: &Value, id: &str) -> Option<Told> {
    let messages = request["messages"].as_array()?;
    let mut told: Option<Told> = None;
    for message in messages {
        let blocks: Vec<Value> = match &message["content"] {
            Value::Array(blocks) => blocks.clone(),
            text @ Value::String(_) => vec![json!({"type": "text", "text": text})],
            _ => continue,
        };
        for block in blocks {
            match (&mut told, block["type"].as_str()) {
                (None, Some("tool_result")) if block["tool_use_id"] == id => {
                    told = Some(Told {
                        result: content_text(&block["content"]),
                        is_error: block["is_error"].as_bool(),
                        context: Vec::new(),
                    });
                }
                (Some(t), Some("tool_result")) => t.context.push(content_text(&block["content"])),
                (Some(t), _) => t.context.extend(block["text"].as_str().map(str::to_string)),
                (None, _) => {}
            }
        }
    }
    told
}

/// OpenAI Responses: the `function_call_output` for `id` and every message text after the call.
pub(super) fn told_openai(request: &Value, id: &str) -> Option<Told> {
    let items = request["input"].as_array()?;
    let call = items
        .iter()
        .position(|i| i["type"] == "function_call" && i["call_id"] == id)?;
    let mut result = None;
    let mut context = Vec::new();
    for item in &items[call + 1..] {
        match item["type"].as_str() {
            Some("function_call_output") if item["call_id"] == id => {
                result = Some(content_text(&item["output"]));
            }
            Some("message") => context.push(content_text(&item["content"])),
            _ => {}
        }
    }
    Some(Told {
        result: result?,
        is_error: None,
        context,
    })
}

/// Gemini: the `functionResponse` for `id` (its `output`, or its `error` when the tool failed)
/// and every text after it. Gemini CLI appends an AfterTool hook's `additionalContext` to the
/// tool's output as `\n\n<hook_context>…</hook_context>`: those sections are context, not result.
pub(super) fn told_gemini(request: &Value, id: &str) -> Option<Told> {
    let contents = request["contents"].as_array()?;
    let parts = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default());
    let mut told: Option<Told> = None;
    for part in parts {
        match &mut told {
            None if part["functionResponse"]["id"] == id => {
                let response = &part["functionResponse"]["response"];
                let (text, is_error) = match (&response["error"], &response["output"]) {
                    (Value::String(e), _) => (e.clone(), true),
                    (_, Value::String(o)) => (o.clone(), false),
                    _ => (response.to_string(), false),
                };
                let (result, context) = split_hook_context(&text);
                told = Some(Told {
                    result,
                    is_error: Some(is_error),
                    context,
                });
            }
            None => {}
            Some(t) => {
                if let Some(text) = part["text"].as_str() {
                    t.context.push(text.to_string());
                } else if let Some(response) = part.get("functionResponse") {
                    t.context.push(response["response"].to_string());
                }
            }
        }
    }
    told
}

/// A Gemini tool output without its `<hook_context>` sections, and the sections' texts.
fn split_hook_context(text: &str) -> (String, Vec<String>) {
    const OPEN: &str = "<hook_context>";
    const CLOSE: &str = "</hook_context>";
    let mut result = String::new();
    let mut context = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let inner = &rest[start + OPEN.len()..];
        let Some(end) = inner.find(CLOSE) else {
            break;
        };
        result.push_str(&rest[..start]);
        context.push(inner[..end].to_string());
        rest = &inner[end + CLOSE.len()..];
    }
    result.push_str(rest);
    (result.trim_end().to_string(), context)
}
