"""Server-side generation controls (llama.cpp's n_predict, vLLM's min_tokens, Ollama's options...):
refused by name unless an UPSTREAMS_FILE server allows them, and never sent to a server that does not."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.config import load_settings
from app.config.controls import CONTROLS, allowed_only, held_back
from app.metrics.catalogue import NoMetrics
from app.providers.base import UpstreamError
from app.providers.call import ChatCall
from app.providers.openai.client import OpenAIProvider
from app.providers.pool.pool import UpstreamPool

from ..conftest import mock_upstream


def test_controls_are_held_back_unless_allowed_and_other_fields_pass() -> None:
    fields = {"n_predict": 3000, "top_k": 40, "options": {"num_predict": -1}, "prompt_cache_retention": "24h"}
    assert held_back(fields, frozenset()) == ["n_predict", "options"]
    assert held_back(fields, frozenset({"n_predict"})) == ["options"]
    assert allowed_only(fields, frozenset({"options"})) == {
        "top_k": 40,
        "options": {"num_predict": -1},
        "prompt_cache_retention": "24h",
    }
    plain = {"top_k": 40}
    assert allowed_only(plain, frozenset()) is plain, "nothing to take out: the same dict"
    assert {
        "n_predict",
        "max_new_tokens",
        "min_tokens",
        "ignore_eos",
        "best_of",
        "grammar",
        "chat_template",
    } <= CONTROLS


def _settings(tmp_path: Path):
    listing = tmp_path / "upstreams.toml"
    listing.write_text(
        '[[upstream]]\nname = "llama"\nurl = "http://llama:8080/v1"\nallow_fields = ["n_predict", "grammar"]\n'
        '[[upstream]]\nname = "vllm"\nurl = "http://vllm:8000/v1"\n'
    )
    return load_settings(environ={"UPSTREAMS_FILE": str(listing), "OPENAI_MODEL": "m"})


def test_a_pool_allows_what_any_of_its_servers_allows(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    allowed = [server.allow_fields for server in settings.upstream.upstreams]
    assert allowed == [frozenset({"n_predict", "grammar"}), frozenset()]
    pool = UpstreamPool(settings, NoMetrics())
    assert pool.allowed_fields("m") == {"n_predict", "grammar"}
    pool.close()


def test_a_server_is_sent_only_the_controls_it_allows(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    sent: dict[str, dict] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        sent[request.url.host] = json.loads(request.content)
        return httpx.Response(400, json={"error": {"message": "no"}})

    with mock_upstream() as router:
        router.post(url__regex=r"http://(llama|vllm).*").mock(side_effect=answer)
        _open_on_each(settings)
    assert {name: sent["llama"].get(name) for name in ("n_predict", "grammar", "top_k", "max_tokens")} == {
        "n_predict": 3000,
        "grammar": "root ::= x",
        "top_k": 5,
        "max_tokens": 5,
    }
    assert "n_predict" not in sent["vllm"] and "grammar" not in sent["vllm"] and sent["vllm"]["top_k"] == 5


def _open_on_each(settings) -> None:
    native = {"api": "chat_completions", "fields": {"n_predict": 3000, "grammar": "root ::= x", "top_k": 5}}
    call = ChatCall(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5, native=native)
    for server in settings.upstream.upstreams:
        provider = OpenAIProvider(settings, server)
        with pytest.raises(UpstreamError):
            provider.open(call)
        provider.close()
