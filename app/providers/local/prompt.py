"""The conversation as the embedded model's chat template takes it: every message text. A small
chat template knows only roles and text, so an assistant's tool calls are written out, a tool's
result becomes a user message naming the call it answers, and content parts are joined."""

from __future__ import annotations

from typing import Any


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each message as `{"role", "content"}` with text content (never null)."""
    called: dict[str, str] = {}
    plain = []
    for message in messages:
        role, text = message["role"], _text(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            called[call.get("id", "")] = function.get("name", "")
            text += f"\nCalled {function.get('name', '')} with {function.get('arguments', '')}"
        if role == "tool":
            name = called.get(message.get("tool_call_id", ""), "") or "a tool"
            role, text = "user", f"The result of {name}: {text}"
        plain.append({"role": role, "content": text.strip("\n") if not message.get("content") else text})
    return plain


def tools_hint(tools: list[dict[str, Any]], ask: str) -> dict[str, str]:
    """A system message that shows the model the tools (names and descriptions) and what to do."""
    shown = "; ".join(
        f"{tool['function']['name']}: {tool['function'].get('description') or 'no description'}" for tool in tools
    )
    return {"role": "system", "content": f"Tools: {shown}. {ask}"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""
