"""A translated request adapted to its model's rules and the Messages API version: sampling
parameters the version or the model refuses dropped, `reasoning_effort` as a thinking budget or
adaptive thinking, a tool choice the model cannot force sent as auto; each change said in the
client's words (`apis/request.adapted` puts them in X-ChatWait-Adapted)."""

from __future__ import annotations

from typing import Any

from ...config.rules import Rules
from ...config.upstreams import SAMPLING_REFUSED_FROM
from ..call import ChatCall

MIN_THINKING_BUDGET = 1024  # Anthropic's smallest budget_tokens
# OpenAI's reasoning efforts as thinking budgets (none and minimal: no thinking).
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32000}
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "max"}  # adaptive thinking's


def adapt(call: ChatCall, body: dict[str, Any], rules: Rules, version: str) -> list[str]:
    """Add `call`'s sampling and thinking to `body` (its other options, translated) as `rules` and
    `version` take them, and mend its tool choice; each change to what the client asked."""
    changes: list[str] = []
    effort = call.options.get("reasoning_effort")
    if effort in THINKING_BUDGETS:
        thinking = _thinking(effort, call.max_tokens, rules, changes)
        config = thinking.pop("output_config", None)
        body.update(thinking)
        if config:
            body["output_config"] = {**body.get("output_config", {}), **config}
    _forced(body, rules, changes)
    sampling = {
        "temperature": call.temperature,
        **{name: body.pop(name) for name in ("top_p", "top_k") if name in body},
    }
    for name, value in sampling.items():
        if value is None:
            continue
        if version >= SAMPLING_REFUSED_FROM:
            changes.append(f"{name} dropped (Messages API version {version} refuses it)")
        elif rules.sampling == "default":
            changes.append(f"{name} dropped (the model takes only its default)")
        elif "thinking" in body and name != "top_p":
            changes.append(f"{name} dropped (thinking takes only the default)")
        elif name == "temperature" and value > 1.0:  # OpenAI's range is 0-2, Anthropic's 0-1
            body[name] = 1.0
            changes.append(f"temperature {value:g} sent as 1 (the Messages API's most)")
        else:
            body[name] = value
    return changes


def _thinking(effort: str, max_tokens: int, rules: Rules, changes: list[str]) -> dict[str, Any]:
    """`reasoning_effort` as the model thinks: adaptive with an effort, or a token budget under
    max_tokens (none where the model does not think or max_tokens leaves no room)."""
    if rules.thinking == "adaptive":
        level = EFFORTS[effort]
        changes.append(f"reasoning_effort {effort} sent as adaptive thinking (effort {level})")
        return {"thinking": {"type": "adaptive"}, "output_config": {"effort": level}}
    if rules.thinking == "none":
        changes.append("reasoning_effort dropped (the model does not think)")
        return {}
    thinking_tokens = min(THINKING_BUDGETS[effort], max_tokens - 1)
    if thinking_tokens < MIN_THINKING_BUDGET:
        changes.append(f"reasoning_effort dropped (max_tokens leaves under {MIN_THINKING_BUDGET} tokens to think)")
        return {}
    return {"thinking": {"type": "enabled", "budget_tokens": thinking_tokens}}


def _forced(body: dict[str, Any], rules: Rules, changes: list[str]) -> None:
    """A tool choice that forces a tool, where the model cannot be forced (auto instead) or is
    asked to think (thinking takes only auto or none: the thinking is dropped)."""
    choice = body.get("tool_choice")
    if choice is None or choice["type"] not in ("any", "tool"):
        return
    asked = "required" if choice["type"] == "any" else "a named function"
    if not rules.forced_tools:
        body["tool_choice"] = {key: value for key, value in choice.items() if key not in ("type", "name")}
        body["tool_choice"]["type"] = "auto"
        changes.append(f"tool_choice {asked} sent as auto (the model cannot be forced to call a tool)")
    elif "thinking" in body:
        body.pop("thinking")
        _without_effort(body)
        changes.append(f"reasoning_effort dropped (tool_choice {asked} takes no thinking)")


def _without_effort(body: dict[str, Any]) -> None:
    config = body.get("output_config")
    if config is not None:
        config.pop("effort", None)
        if not config:
            body.pop("output_config")
