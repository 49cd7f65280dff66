"""Schemathesis generates requests from the served contract and checks the live server's answers."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from app.config import load_settings
from app.http import FAMILIES
from app.http.openapi import render_contract
from harness.processes import ChatWaitServer

from ..conftest import server_env

GENEROUS = {"MAX_INPUT_TOKENS": "1000000", "STREAM_TTL_SECONDS": "30"}


# The contract such a server serves: its allowed models and bounds filled in.
CONTRACT = render_contract(load_settings(environ=server_env("http://127.0.0.1:1/v1", **GENEROUS)), FAMILIES)
# Invalid data is rightly refused with 413 when it is also too large (schemathesis's list lacks it).
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})
SCHEMA = schemathesis.openapi.from_dict(yaml.safe_load(CONTRACT), config=CONFIG)

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # xdist (--dist loadfile) loses its generated cases


def _within_64_bits(value) -> bool:
    """Whether every integer in a JSON value fits in 64 bits."""
    if isinstance(value, dict):
        return all(_within_64_bits(item) for item in value.values())
    if isinstance(value, list):
        return all(_within_64_bits(item) for item in value)
    return not isinstance(value, int) or -(2**63) <= value < 2**64


def _orphaned(items: list) -> bool:
    """Whether a Responses input holds a tool output whose call_id no call before it has."""
    called = set()
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        call_id = item.get("call_id") if isinstance(item, dict) else None
        call_id = call_id if isinstance(call_id, str) else None  # a negative case's may be any JSON
        if kind in ("function_call", "custom_tool_call"):
            called.add(call_id)
        elif kind in ("function_call_output", "custom_tool_call_output") and call_id not in called:
            return True
    return False


@schemathesis.hook
def filter_body(ctx, body) -> bool:
    """The rules of the contract JSON Schema cannot say (its descriptions do): a conversation's
    items hold no integer beyond 64 bits; a Responses input's tool outputs answer calls before
    them; a tool_choice that names a function (OpenAI's) or a tool (Anthropic's) names one of
    `tools`."""
    if isinstance(body, dict) and "items" in body and not _within_64_bits(body["items"]):
        return False
    if isinstance(body, dict) and isinstance(body.get("input"), list) and _orphaned(body["input"]):
        return False
    if not isinstance(body, dict) or not isinstance(body.get("tool_choice"), dict):
        return True
    choice = body["tool_choice"]
    named = (choice.get("function") or {}).get("name") if "function" in choice else choice.get("name")
    if "function" not in choice and named is None:
        return True
    tools = body.get("tools") or ()
    return any(((tool.get("function") or {}).get("name") or tool.get("name")) == named for tool in tools)


@pytest.fixture(scope="module")
def generous_server(fake):
    """A server whose token limit admits every request the contract allows."""
    running = ChatWaitServer(server_env(fake.base_url, **GENEROUS))
    yield running
    running.stop()


def test_the_served_contract_is_the_one_fuzzed(generous_server) -> None:
    served = yaml.safe_load(httpx.get(f"{generous_server.url}/openapi.yaml").content)
    assert served == yaml.safe_load(CONTRACT)
    request = served["components"]["schemas"]["ChatRequest"]["properties"]
    assert request["model"]["enum"] == ["fake-model", "other-model"]


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_server_honours_its_contract(case, generous_server) -> None:
    case.call_and_validate(base_url=generous_server.url, timeout=30)
