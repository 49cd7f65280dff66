"""providers/openai/identity: the base URL and headers are the installed `openai` SDK's own."""

from __future__ import annotations

import httpx
import openai
import pytest

from app.providers.openai import identity

URLS = [None, "http://127.0.0.1:9/v1", "http://h/v1/", "http://h"]


def _sdk(url: str | None, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=url, max_retries=0, http_client=httpx.Client())


@pytest.mark.parametrize("url", URLS)
def test_the_base_url_is_the_sdks(url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert identity.base_url(url) == str(_sdk(url, "k").base_url)


@pytest.mark.parametrize("organization", [None, "org-1"])
@pytest.mark.parametrize("project", [None, "proj-2"])
def test_the_headers_are_the_sdks(
    organization: str | None, project: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in (("OPENAI_ORG_ID", organization), ("OPENAI_PROJECT_ID", project)):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    sdk = _sdk("http://h/v1", "sk-test-key")
    expected = {k: v for k, v in sdk.default_headers.items() if isinstance(v, str)} | sdk.auth_headers
    assert identity.headers("sk-test-key") == expected
    assert list(identity.headers("sk-test-key")) == list(expected), "in the SDK's order"


def test_a_query_stays_after_the_slash_the_path_gets() -> None:
    """As the SDK's newest releases do (older ones appended the slash to the query)."""
    url = "https://x.example/openai/deployments/y?api-version=1"
    assert identity.base_url(url) == "https://x.example/openai/deployments/y/?api-version=1"
