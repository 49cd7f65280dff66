"""A model server's own list of models (GET /models): read only where it is complete and the
server refuses names it does not list; a configured name matched as its server takes it."""

from __future__ import annotations

import json

import pytest

from app.providers.httpapi.models import MAX_LIST_BYTES, is_listed, listed_models


def _list(*entries: dict, **extra: object) -> bytes:
    return json.dumps({"object": "list", "data": list(entries), **extra}).encode()


def test_an_openai_style_list_gives_its_ids() -> None:
    body = _list({"id": "gpt-4o", "owned_by": "system"}, {"id": "gpt-4o-mini", "owned_by": "system"}, {"x": 1})
    assert listed_models(body, "api.openai.com") == {"gpt-4o", "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("body", "host", "why"),
    [
        (_list({"id": "qwen.gguf", "owned_by": "llamacpp"}), "10.0.0.5", "llama.cpp's server answers any name"),
        (_list({"id": "/models/smol", "owned_by": "me"}), "10.0.0.5", "llama-cpp-python's answers any name"),
        (_list({"id": "gpt-4o"}), "x.openai.azure.com", "Azure's deployments are not in its list"),
        (_list({"id": "claude-a"}, has_more=True), "api.anthropic.com", "a page of a longer list"),
        (_list(), "h", "an empty list says nothing"),
        (b'{"data": "no"}', "h", "not a list"),
        (b"<html>", "h", "not JSON"),
        (b"[1, 2]", "h", "not an object"),
        (_list({"id": "a"}) + b" " * MAX_LIST_BYTES, "h", "longer than it reads"),
    ],
)
def test_a_list_it_cannot_judge_by_is_none(body: bytes, host: str, why: str) -> None:
    assert listed_models(body, host) is None, why


def test_two_models_on_llama_cpp_are_judged() -> None:
    """llama-server in router mode serves several models and refuses the others."""
    body = _list({"id": "a", "owned_by": "llamacpp"}, {"id": "b", "owned_by": "llamacpp"})
    assert listed_models(body, "h") == {"a", "b"}


@pytest.mark.parametrize(
    ("model", "ids", "listed"),
    [
        ("gpt-4o", {"gpt-4o", "gpt-4o-mini"}, True),
        ("gpt-4o-mni", {"gpt-4o", "gpt-4o-mini"}, False),
        ("claude-sonnet-4-5", {"claude-sonnet-4-5-20250929"}, True),  # an alias of a dated model
        ("claude-3-5-haiku-latest", {"claude-3-5-haiku-20241022"}, True),
        ("claude-sonet-4-5", {"claude-sonnet-4-5-20250929"}, False),
        ("llama3", {"llama3:latest"}, True),  # Ollama's default tag
        ("llama3:8b", {"llama3:latest"}, False),
        ("Qwen/Qwen2.5-7B", {"qwen/qwen2.5-7b"}, False),  # names are case-sensitive
    ],
)
def test_a_configured_name_is_listed_as_its_server_takes_it(model: str, ids: set[str], listed: bool) -> None:
    assert is_listed(model, ids) is listed
