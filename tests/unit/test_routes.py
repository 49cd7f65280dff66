"""A 404 names the route the client may have meant: a typo, a missing /v1, a singular."""

from __future__ import annotations

import pytest
from werkzeug.routing import Map, Rule

from app.http.routes import Routes

ROUTES = Routes(
    Map(
        [
            Rule("/v1/chat/completions", methods=["POST"]),
            Rule("/v1/chat/streaming", methods=["POST"]),
            Rule("/v1/chat/streaming/<stream_id>", methods=["GET"]),
            Rule("/v1/responses/<response_id>/cancel", methods=["POST"]),
            Rule("/v1/models", methods=["GET"]),
            Rule("/static/<path:filename>", endpoint="static"),
        ]
    ).iter_rules()
)


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ("/v1/chat/completion", "POST /v1/chat/completions"),
        ("/chat/completions", "POST /v1/chat/completions"),
        ("/v1/model", "GET /v1/models"),
        ("/v1/chat/streamin/9c1e", "GET /v1/chat/streaming/<stream_id>"),
        ("/v1/responses/resp_abc/cancl", "POST /v1/responses/<response_id>/cancel"),
    ],
)
def test_the_nearest_route_is_named(path: str, meant: str) -> None:
    assert ROUTES.nearest(path) == meant


@pytest.mark.parametrize("path", ["/xyz", "/", "/" + "a" * 5000, "/static/x", "/v9/something/else/entirely"])
def test_nothing_is_named_when_nothing_is_near(path: str) -> None:
    assert ROUTES.nearest(path) is None


def test_a_404_says_which_route_was_meant_in_the_paths_shape(client) -> None:
    openai = client.post("/v1/chat/completion", json={})
    assert openai.status_code == 404
    assert "Did you mean POST /v1/chat/completions?" in openai.get_json()["error"]["message"]
    native = client.get("/chat/streaming/abc/extra")
    assert native.status_code == 404 and native.get_json()["action"].startswith("Did you mean GET /")
    assert client.get("/nowhere/near").get_json()["action"] == "Check the path against /openapi.yaml."
