"""Each model's rules, as its maker publishes them: its output limit and context window, what it
reads (text, images, files), whether it calls tools and reasons, and what its API takes of a
request (sampling at any value or only the default, thinking by a token budget or adaptive, a
forced tool choice). A table by name here, overridden per model by UPSTREAMS_FILE's `models`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .values import ConfigError

DEFAULT_OUTPUT_LIMIT = 4096  # a model nobody describes: fits any server with an 8k context
MAX_OUTPUT_LIMIT = 1_000_000
SAMPLING = ("any", "default")  # every temperature, or only the model's default (none sent)
THINKING = ("none", "budget", "adaptive")
MODALITIES = ("text", "image", "file")
MAX_DESCRIBED = 256  # models UPSTREAMS_FILE's `models` table describes


@dataclasses.dataclass(frozen=True)
class Rules:
    """What ChatWait knows of a model besides its price (None: not known)."""

    max_output_tokens: int | None = None
    context_window: int | None = None
    input_modalities: tuple[str, ...] = ("text",)
    tools: bool = True
    reasoning: bool = False
    sampling: str = "any"  # `SAMPLING`
    thinking: str = "none"  # `THINKING`: how reasoning_effort is asked of a Messages API server
    forced_tools: bool = True  # tool_choice may force a tool (required, or a named one)
    described: str = "table"  # where these come from: the table here, UPSTREAMS_FILE, or none

    def public(self) -> dict[str, Any]:
        """The fields /v1/models shows."""
        return {
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "input_modalities": list(self.input_modalities),
            "tools": self.tools,
            "reasoning": self.reasoning,
        }


_SEEN = ("text", "image")
_DOCUMENTS = ("text", "image", "file")
_CLAUDE_NEW = dict(sampling="default", thinking="adaptive", reasoning=True, input_modalities=_DOCUMENTS)
_CLAUDE_4 = dict(thinking="budget", reasoning=True, input_modalities=_DOCUMENTS)
# (pattern on the lowercased name, rules): the first that matches. Makers' published limits.
TABLE: tuple[tuple[re.Pattern[str], Rules], ...] = tuple(
    (re.compile(pattern), rules)
    for pattern, rules in (
        (r"(.*/)?claude-(fable|mythos)-", Rules(128_000, 1_000_000, forced_tools=False, **_CLAUDE_NEW)),
        (r"(.*/)?claude-haiku-5", Rules(64_000, 1_000_000, **_CLAUDE_NEW)),
        (r"(.*/)?claude-(opus|sonnet)-5|(.*/)?claude-opus-4-[78]", Rules(128_000, 1_000_000, **_CLAUDE_NEW)),
        (r"(.*/)?claude-opus-4-6", Rules(128_000, 1_000_000, **_CLAUDE_4)),
        (r"(.*/)?claude-sonnet-4-6", Rules(64_000, 1_000_000, **_CLAUDE_4)),
        (r"(.*/)?claude-(sonnet|haiku)-4|(.*/)?claude-3-7", Rules(64_000, 200_000, **_CLAUDE_4)),
        (r"(.*/)?claude-opus-4", Rules(32_000, 200_000, **_CLAUDE_4)),
        (r"(.*/)?claude-3-5", Rules(8192, 200_000, input_modalities=_DOCUMENTS)),
        (r"(.*/)?claude-", Rules(4096, 200_000, input_modalities=_SEEN)),
        (r"(.*/)?gpt-(5|6)", Rules(128_000, 400_000, reasoning=True, input_modalities=_DOCUMENTS)),
        (r"(.*/)?o[134](-|$)", Rules(100_000, 200_000, reasoning=True, input_modalities=_DOCUMENTS)),
        (r"(.*/)?gpt-4\.1", Rules(32_768, 1_047_576, input_modalities=_DOCUMENTS)),
        (r"(.*/)?(chatgpt-)?gpt-4o", Rules(16_384, 128_000, input_modalities=_DOCUMENTS)),
        (r"(.*/)?gpt-4-turbo", Rules(4096, 128_000, input_modalities=_SEEN)),
        (r"(.*/)?gpt-3\.5", Rules(4096, 16_385)),
        (r"(.*/)?(meta-)?llama-?3\.[123]", Rules(None, 131_072)),
        # Open-weight models are served with whatever context their server was given: their replies'
        # bound stays DEFAULT_OUTPUT_LIMIT unless UPSTREAMS_FILE describes them.
        (r"(.*/)?qwen3", Rules(None, 131_072, reasoning=True)),
        (r"(.*/)?qwen2\.5", Rules(None, 131_072)),
        (r"(.*/)?deepseek-(r1|reasoner)", Rules(64_000, 128_000, reasoning=True)),
        (r"(.*/)?deepseek-(chat|v3)", Rules(8192, 128_000)),
        (r"(.*/)?(mistral|ministral|magistral|codestral)", Rules(None, 128_000)),
        (r"(.*/)?gemma-3", Rules(None, 131_072, input_modalities=_SEEN)),
    )
)
UNKNOWN = Rules(tools=False, thinking="budget", described="none")  # a model nobody describes: asked as Claude 4 was


def rules_of(model: str, described: Mapping[str, Rules]) -> Rules:
    """`model`'s rules: UPSTREAMS_FILE's description of it, else the table's, else none known."""
    found = described.get(model)
    if found is not None:
        return found
    found = _TABLED.get(model)
    if found is None:
        found = _tabled(model)
        if len(_TABLED) >= MAX_REMEMBERED:
            _TABLED.clear()
        _TABLED[model] = found
    return found


MAX_REMEMBERED = 1024  # model names whose table row is remembered (each request asks)
_TABLED: dict[str, Rules] = {}


def _tabled(model: str) -> Rules:
    lowered = model.lower()
    for pattern, rules in TABLE:
        if pattern.match(lowered):
            return rules
    return UNKNOWN


_FIELDS = tuple(field.name for field in dataclasses.fields(Rules) if field.name != "described")
_EXAMPLE = '[models."my-model"]\nmax_output_tokens = 8192\ncontext_window = 32768'


def described_table(where: str, table: Any) -> dict[str, Rules]:
    """UPSTREAMS_FILE's `models` table: each model's rules, over the table's (fields not given
    keep the table's); errors name the model and the field."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must describe each model by name, e.g. {_EXAMPLE!r}.")
    if len(table) > MAX_DESCRIBED:
        raise ConfigError(f"{where} describes {len(table)} models; at most {MAX_DESCRIBED}.")
    return {
        str(model): _described(f"{where}: {str(model)[:80]!r}", str(model), fields) for model, fields in table.items()
    }


def _described(where: str, model: str, fields: Any) -> Rules:
    if not isinstance(fields, dict):
        raise ConfigError(f"{where} must be a table of the model's rules, e.g. {_EXAMPLE!r}.")
    for field in fields:
        if field not in _FIELDS:
            raise ConfigError(f"{where}: {str(field)[:40]!r} is not a rule: use {', '.join(_FIELDS)}.")
    base = rules_of(model, {})
    found: dict[str, Any] = {}
    for field in ("max_output_tokens", "context_window"):
        if field in fields:
            value = fields[field]
            if type(value) is not int or not 1 <= value <= MAX_OUTPUT_LIMIT * 10:
                raise ConfigError(
                    f"{where}: {field} must be a whole number of tokens, from 1 to {MAX_OUTPUT_LIMIT * 10}."
                )
            found[field] = value
    for field in ("tools", "reasoning", "forced_tools"):
        if field in fields:
            if type(fields[field]) is not bool:
                raise ConfigError(f"{where}: {field} must be true or false.")
            found[field] = fields[field]
    for field, choices in (("sampling", SAMPLING), ("thinking", THINKING)):
        if field in fields:
            if fields[field] not in choices:
                raise ConfigError(f"{where}: {field} must be one of {', '.join(choices)}.")
            found[field] = fields[field]
    if "input_modalities" in fields:
        listed = fields["input_modalities"]
        if not isinstance(listed, list) or not listed or not all(item in MODALITIES for item in listed):
            raise ConfigError(f"{where}: input_modalities must list some of {', '.join(MODALITIES)}.")
        found["input_modalities"] = tuple(dict.fromkeys(listed))
    return dataclasses.replace(base, described="operator", **found)
