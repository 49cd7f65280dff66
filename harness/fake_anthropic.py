"""The fake upstream's Messages API (POST /v1/messages), as Anthropic's servers speak it.

A request is read as the chat completions request it means (`chat_request`), so the same
directives and typed replies drive it; what the fake would send as chat completions is written
as Anthropic's events (`MessagesSocket`): `message_start` and a `ping`, content blocks (text,
thinking sealed with a signature, tool_use with `input_json_delta` pieces), `message_delta` with
the stop reason (`@stopped_by=SEQ`: that stop sequence; a refusal, `@refusal`, is `refusal` with
no content) and usage, `message_stop`; an
`{"error": ...}` chunk becomes an `error` event, and a reply ended without a finish reason ends
without a stop reason. A request that marks any block with `cache_control` is answered as if
part of its prompt came from the cache (CACHE_READ and CACHE_WRITTEN tokens). Errors are in
Anthropic's shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error", 503: "api_error"}
CACHE_READ, CACHE_WRITTEN = 7, 5


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages request as the chat completions request it means."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for message in body.get("messages") or ():
        messages += _chat_messages(message["role"], message.get("content"))
    chat = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": body.get("max_tokens"),
        "stream": bool(body.get("stream")),
        "stream_options": {"include_usage": True},
    }
    tools = body.get("tools")
    if tools:
        chat["tools"] = [
            {"type": "function", "function": {"name": t["name"], "parameters": t.get("input_schema", {})}}
            for t in tools
        ]
        choice = body.get("tool_choice") or {"type": "auto"}
        chat["tool_choice"] = {"any": "required", "none": "none", "auto": "auto"}.get(choice["type"]) or {
            "type": "function",
            "function": {"name": choice.get("name")},
        }
    form = (body.get("output_config") or {}).get("format")
    if form:
        chat["response_format"] = {"type": "json_schema", "json_schema": {"schema": form.get("schema", {})}}
    return chat


def _chat_messages(role: str, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    found = [
        {"role": "tool", "tool_call_id": b["tool_use_id"], "content": _text(b.get("content", ""))}
        for b in content
        if b.get("type") == "tool_result"
    ]
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = [
        {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b["input"])}}
        for b in content
        if b.get("type") == "tool_use"
    ]
    if calls:
        return [*found, {"role": "assistant", "content": text or None, "tool_calls": calls}]
    return [*found, {"role": role, "content": text}] if text or not found else found


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def cached(body: dict[str, Any]) -> str | None:
    """The lifetime of the prompt cache the request asks for (`1h` where a block's cache_control
    says so, else `5m`); None: no block asks for it."""
    said = json.dumps(body)
    if '"cache_control"' not in said:
        return None
    return "1h" if '"ttl": "1h"' in said else "5m"


def usage(prompt: int, output: int, from_cache: str | None) -> dict[str, Any]:
    """Anthropic's usage: input_tokens leave out what the cache read and wrote; the writes by
    their lifetime in `cache_creation`."""
    read, written = (CACHE_READ, CACHE_WRITTEN) if from_cache else (0, 0)
    long = written if from_cache == "1h" else 0
    return {
        "input_tokens": max(0, prompt - read - written),
        "output_tokens": output,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written - long, "ephemeral_1h_input_tokens": long},
    }


def whole_message(reply: dict[str, Any], from_cache: str | None) -> dict[str, Any]:
    """A non-streamed chat completion as a Messages API `message`."""
    choice = reply["choices"][0]
    said = choice["message"]
    content: list[dict[str, Any]] = []
    if said.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": said["reasoning_content"], "signature": "sig-fake"})
    if said.get("content"):
        content.append({"type": "text", "text": said["content"]})
    refused = bool(said.get("refusal"))  # Anthropic's models say so by the stop reason alone
    for call in said.get("tool_calls") or ():
        function = call["function"]
        content.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": json.loads(function["arguments"])}
        )
    counted = reply["usage"]
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": reply["model"],
        "content": content,
        "stop_reason": "refusal" if refused else STOP_REASONS.get(choice["finish_reason"], "end_turn"),
        "stop_sequence": None,
        "usage": usage(counted["prompt_tokens"], counted["completion_tokens"], from_cache),
    }


def error(status: int, payload: Any) -> dict[str, Any]:
    """An error answer in Anthropic's shape (the words kept: a 400's say why)."""
    said = payload.get("error", {}) if isinstance(payload, dict) else {}
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": said.get("message", "error")}}


class MessagesSocket:
    """The client's socket, through which the fake's chat completions answer goes out as the
    Messages API's (the rest of the socket's methods are the socket's own)."""

    def __init__(self, sock: Any, model: str | None, from_cache: str | None, stopped_by: str | None = None) -> None:
        self._sock = sock
        self._stopped_by = stopped_by  # a reply that ends with end_turn ends by this stop sequence
        self._model = model
        self._from_cache = from_cache
        self._headed = False
        self._blocks: list[str] = []  # each open or closed block's type
        self._calls: dict[int, int] = {}  # a chat tool call's index -> its block
        self._stop: str | None = None
        self._refused = False  # the reply was a refusal (`@refusal`): it ends with stop_reason refusal
        self._usage = usage(0, 0, from_cache)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        if not self._headed:
            self._headed = True
            head, _, body = data.partition(b"\r\n\r\n")
            if b"Transfer-Encoding: chunked" in head:
                self._sock.sendall(head + b"\r\n\r\n")
                self._start()
                return
            self._sock.sendall(self._whole(head, body))
            return
        if data == b"0\r\n\r\n":
            self._sock.sendall(data)
            return
        payload = data.partition(b"\r\n")[2][:-2]
        for line in payload.split(b"\n"):
            if line.startswith(b"data: "):
                self._chunk(line[6:])

    def _whole(self, head: bytes, body: bytes) -> bytes:
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        payload = json.loads(body)
        said = whole_message(payload, self._from_cache) if status == 200 else error(status, payload)
        answer = json.dumps(said).encode()
        kept = [line for line in lines[1:] if not line.lower().startswith("content-length")]
        return ("\r\n".join([lines[0], *kept, f"Content-Length: {len(answer)}"]) + "\r\n\r\n").encode() + answer

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        frame = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        self._sock.sendall(b"%x\r\n%s\r\n" % (len(frame), frame))

    def _start(self) -> None:
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage,
        }
        self._event("message_start", {"type": "message_start", "message": message})
        self._event("ping", {"type": "ping"})

    def _chunk(self, data: bytes) -> None:
        if data == b"[DONE]":
            self._end()
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            frame = b"data: " + data + b"\n\n"  # a garbled chunk stays garbled
            self._sock.sendall(b"%x\r\n%s\r\n" % (len(frame), frame))
            return
        if chunk.get("error"):
            self._event("error", {"type": "error", "error": {"type": "api_error", "message": "exploded"}})
            return
        if chunk.get("usage"):
            counted = chunk["usage"]
            self._usage = usage(counted["prompt_tokens"], counted["completion_tokens"], self._from_cache)
        for choice in chunk.get("choices") or ():
            self._delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._stop = "refusal" if self._refused else STOP_REASONS.get(choice["finish_reason"], "end_turn")

    def _delta(self, delta: dict[str, Any]) -> None:
        if delta.get("refusal"):  # the model refuses: Anthropic's models say so by the stop reason alone
            self._refused = True
            return
        if delta.get("reasoning_content"):
            self._piece("thinking", {"type": "thinking_delta", "thinking": delta["reasoning_content"]})
        if delta.get("content"):
            self._piece("text", {"type": "text_delta", "text": delta["content"]})
        for call in delta.get("tool_calls") or ():
            index = call.get("index", 0)
            if call.get("id") and index not in self._calls:
                block = self._open("tool_use", {"id": call["id"], "name": call["function"]["name"], "input": {}})
                self._calls[index] = block
            arguments = (call.get("function") or {}).get("arguments")
            if arguments:
                piece = {"type": "input_json_delta", "partial_json": arguments}
                said = {"type": "content_block_delta", "index": self._calls[index], "delta": piece}
                self._event("content_block_delta", said)

    def _piece(self, kind: str, delta: dict[str, Any]) -> None:
        block = len(self._blocks) - 1
        if not self._blocks or self._blocks[-1] != kind:
            block = self._open(kind, {"thinking": "", "signature": ""} if kind == "thinking" else {"text": ""})
        self._event("content_block_delta", {"type": "content_block_delta", "index": block, "delta": delta})

    def _open(self, kind: str, fields: dict[str, Any]) -> int:
        self._close()
        self._blocks.append(kind)
        block = len(self._blocks) - 1
        start = {"type": "content_block_start", "index": block, "content_block": {"type": kind, **fields}}
        self._event("content_block_start", start)
        return block

    def _close(self) -> None:
        """Stop the open block (a thinking block sealed with its signature first)."""
        if not self._blocks:
            return
        block = len(self._blocks) - 1
        if self._blocks[-1] == "thinking":
            seal = {"type": "signature_delta", "signature": f"sig-fake-{block}"}
            self._event("content_block_delta", {"type": "content_block_delta", "index": block, "delta": seal})
        self._event("content_block_stop", {"type": "content_block_stop", "index": block})

    def _end(self) -> None:
        self._close()
        self._blocks.append("closed")  # nothing more to stop
        if self._stop is not None:
            ended = {"stop_reason": self._stop, "stop_sequence": None}
            if self._stopped_by is not None and self._stop == "end_turn":
                ended = {"stop_reason": "stop_sequence", "stop_sequence": self._stopped_by}
            delta = {"type": "message_delta", "delta": ended}
            self._event("message_delta", {**delta, "usage": self._usage})
        self._event("message_stop", {"type": "message_stop"})


VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING = ("temperature", "top_p", "top_k")
# Claude models of 2026 (their published rules): only the default sampling, thinking adaptive
# (a budget refused); those that always think cannot be forced to call a tool.
_NEW_CLAUDE = re.compile(r"claude-((opus|sonnet)-5|haiku-5|opus-4-[78]|fable-|mythos-)")
_ALWAYS_THINKING = re.compile(r"claude-(fable|mythos)-")
_BUDGET_ONLY = re.compile(r"claude-(3|(opus|sonnet|haiku)-4-[015]|(opus|sonnet)-4(-|$))")  # no adaptive thinking


def refusal(headers: dict[str, str], body: dict[str, Any]) -> str | None:
    """What Anthropic's API would refuse in this request, as its 400 says it (None: nothing): the
    API version's rules, then the model's."""
    version = headers.get("anthropic-version")
    if version not in VERSIONS:
        return f"anthropic-version: {version!r} is not a valid version"
    sampled = [name for name in SAMPLING if name in body]
    if version >= "2026-10-21" and sampled:
        return f"{sampled[0]}: Extra inputs are not permitted"
    model = str(body.get("model", ""))
    thinking = body.get("thinking") or {}
    forced = (body.get("tool_choice") or {}).get("type") in ("any", "tool")
    if _NEW_CLAUDE.match(model):
        if [name for name in sampled if name != "temperature" or body[name] != 1]:
            return f"{sampled[0]}: {model} takes only the default sampling"
        if thinking.get("type") == "enabled":
            return "thinking.type.enabled is not supported for this model: use thinking.type.adaptive"
        if forced and _ALWAYS_THINKING.match(model):
            return "tool_choice: this model supports only auto and none"
    elif thinking.get("type") == "adaptive" and _BUDGET_ONLY.match(model):
        return "thinking.type.adaptive is not supported for this model"
    if forced and thinking.get("type") in ("enabled", "adaptive"):
        return "tool_choice: thinking may not be used with a forced tool; use auto or none"
    if "temperature" in body and thinking and body["temperature"] != 1:
        return "temperature may only be set to 1 when thinking is enabled"
    return None


def answer(server: Any, sock: Any, headers: dict[str, str], request: dict[str, Any], buffer: bytes) -> Any:
    """Answer a Messages request on `server` (the fake): refused as Anthropic's API would
    (`refusal`), else as the chat completions request it means, in Anthropic's events; the
    outcome notes the API, the headers a test checks and the body."""
    refused = refusal(headers, request)
    if refused is not None:  # kept for the test to see
        server.requests += 1
        server.outcomes.append({"api": "messages", "status": 400, "refused": refused, "body": request, "message": ""})
        server.send_json(sock, 400, {"type": "error", "error": {"type": "invalid_request_error", "message": refused}})
        return buffer
    model, from_cache = request.get("model"), cached(request)
    stopped_by = re.search(r"@stopped_by=(\w+)", json.dumps(request.get("messages")))
    wrapped = MessagesSocket(sock, model, from_cache, stopped_by and stopped_by[1])
    asked = {**headers, "authorization": "Bearer " + headers.get("x-api-key", "")}
    outcome_at = len(server.outcomes)
    result = server.completions(wrapped, asked, chat_request(request), buffer)
    if len(server.outcomes) > outcome_at:  # what a test checks came as the Messages API
        sent = {name: headers.get(name) for name in ("x-api-key", "anthropic-version", "anthropic-beta")}
        server.outcomes[-1].update(api="messages", headers=sent, body=request)
    return result
