//! The two wire formats the fake speaks: the answers it streams (Anthropic Messages events,
//! OpenAI Responses events) and what it reads back of a request after a tool call.

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
