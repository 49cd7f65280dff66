"""The contract as served at /openapi.yaml: the file, with this deployment's limits filled in.

contracts/openapi.yaml states the defaults; a deployment may allow other models or other
bounds, and its served contract says so, so generated clients and fuzzers see the truth.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..config import Settings

CONTRACT_PATH = Path(__file__).resolve().parents[2] / "contracts" / "openapi.yaml"


def render_contract(settings: Settings) -> bytes:
    """The contract with the allowed models and the configured bounds of every request body."""
    contract = yaml.safe_load(CONTRACT_PATH.read_text(encoding="utf-8"))
    schemas = contract["components"]["schemas"]
    request = schemas["ChatRequest"]["properties"]
    request["model"]["enum"] = list(settings.allowed_models)
    request["message"]["maxLength"] = settings.max_message_chars
    request["system"]["maxLength"] = settings.max_message_chars
    request["history"]["maxItems"] = settings.max_history_messages
    request["max_tokens"]["maximum"] = settings.max_tokens
    completion = schemas["CompletionRequest"]["properties"]
    completion["model"]["enum"] = [*settings.allowed_models, None]
    completion["messages"]["maxItems"] = settings.max_history_messages + 2
    completion["max_tokens"]["maximum"] = completion["max_completion_tokens"]["maximum"] = settings.max_tokens
    response = schemas["ResponseRequest"]["properties"]
    response["model"]["enum"] = [*settings.allowed_models, None]
    response["input"]["oneOf"][1]["maxItems"] = settings.max_history_messages + 2
    response["max_output_tokens"]["maximum"] = settings.max_tokens
    return yaml.safe_dump(contract, sort_keys=False, allow_unicode=True).encode("utf-8")
