"""The OpenAI provider at the HTTP layer (respx at its httpx client): parsing, usage, error classes, no leaks."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
import respx

from app.config import load_settings
from app.providers.base import UpstreamError
from app.providers.call import ChatCall
from app.providers.http1 import Http1Transport
from app.providers.httpapi.errors import refusal_reason, retry_after_seconds
from app.providers.httpapi.stream import MAX_SKIPPED_CHUNKS
from app.providers.openai.client import OpenAIProvider

URL = "http://upstream.test/v1/chat/completions"
SECRET_BODY = {"error": {"message": "Incorrect API key provided: sk-proj-LEAKYkey0123456789. See dashboard."}}
CALL = ChatCall(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5)


def _sse(*chunks: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])
    return "".join(lines).encode()


def _delta(text: str | None, finish: str | None = None) -> dict:
    delta = {} if text is None else {"content": text}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None}


def _garbled(line: bytes) -> bytes:
    """A malformed chunk, once more than a reply may skip."""
    return line * (MAX_SKIPPED_CHUNKS + 1)


@pytest.fixture
def provider() -> OpenAIProvider:
    settings = load_settings(environ={"OPENAI_BASE_URL": "http://upstream.test/v1", "OPENAI_API_KEY": "sk-x"})
    made = OpenAIProvider(settings)
    yield made
    made.close()


def _collect(provider: OpenAIProvider) -> tuple[list[str], object]:
    with provider.open(CALL) as generation:
        return list(generation), generation


def test_pieces_finish_reason_usage_and_request_id(upstream_mock, provider) -> None:
    body = _sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        _delta("Hel"),
        _delta("lo"),
        _delta(None, "stop"),
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
    )
    route = upstream_mock.post(URL).mock(
        return_value=httpx.Response(200, content=body, headers={"x-request-id": "req_7"})
    )
    pieces, generation = _collect(provider)
    assert pieces == ["Hel", "lo"]
    assert generation.finish_reason == "stop"
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (9, 2)
    assert generation.upstream_request_id == "req_7"
    sent = json.loads(route.calls.last.request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == 5 and "temperature" not in sent
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-x"


@pytest.mark.parametrize("base_url", ["http://upstream.test/v1", "https://upstream.test:8443/v1"])
def test_request_is_the_one_httpx_builds_from_content(upstream_mock, base_url) -> None:
    """Headers encoded once per provider, plus the body's Content-Length: the same request,
    header for header and in the same order, as httpx.Request(content=...) would make."""
    settings = load_settings(environ={"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-x"})
    provider = OpenAIProvider(settings)
    url = f"{base_url}/chat/completions"
    route = upstream_mock.post(url).mock(return_value=httpx.Response(200, content=_sse(_delta("x", "stop"))))
    try:
        _collect(provider)
    finally:
        provider.close()
    sent = route.calls.last.request
    expected = httpx.Request(
        "POST",
        url,
        headers=[h for h in sent.headers.raw if h[0] not in (b"Host", b"Content-Length")],
        content=sent.content,
    )
    assert sent.headers.raw == expected.headers.raw
    assert sent.headers["host"] == httpx.URL(url).netloc.decode()
    assert int(sent.headers["content-length"]) == len(sent.content) > 0
    assert sent.headers["content-type"] == "application/json" and sent.headers["x-stainless-retry-count"] == "0"


def test_stream_options_rejected_then_asked_without(upstream_mock, provider) -> None:
    ok = httpx.Response(200, content=_sse(_delta("x", "stop")))
    route = upstream_mock.post(URL).mock(side_effect=[httpx.Response(400, json={"error": {"message": "no"}}), ok, ok])
    pieces, generation = _collect(provider)
    assert pieces == ["x"] and generation.usage is None
    assert "stream_options" not in json.loads(route.calls[1].request.content)
    _collect(provider)
    assert "stream_options" not in json.loads(route.calls[2].request.content), "remembered"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ({"message": "This model's maximum context length is 4096 tokens.", "type": "BadRequest"}, "context_length"),
        ({"message": "x", "code": "context_length_exceeded", "param": "messages"}, "context_length"),  # OpenAI
        ({"message": "the request exceeds the available context size", "type": "exceed_context_size_error"},
         "context_length"),  # llama.cpp's llama-server
        ({"message": "filtered", "code": "content_filter", "param": "prompt"}, "content_policy"),  # Azure
        ({"message": "Your request was rejected by our safety system.", "code": None}, "content_policy"),
        ({"message": "Unrecognized request argument supplied: stream_options"}, "stream_options"),
        ({"message": "Final assistant message prefill is not supported.", "type": "x"}, "prefill"),  # vLLM's kind
        ({"message": "no"}, None),
        ("not an object", None),
    ],
)  # fmt: skip
def test_a_400_says_why_in_chatwaits_words_and_a_refusal_for_content_is_not_sent_again(
    upstream_mock, provider, error, reason
) -> None:
    assert refusal_reason(json.dumps({"error": error}).encode()) == reason
    route = upstream_mock.post(URL).mock(return_value=httpx.Response(400, json={"error": error}))
    with pytest.raises(UpstreamError) as refused:
        _collect(provider)
    expected = {"context_length": "input_too_long", "content_policy": "content_policy_violation"}
    assert refused.value.error_code == expected.get(reason, "upstream_rejected")
    asked_again = reason in (None, "stream_options")  # an unexplained 400, or one naming stream_options
    assert route.call_count == (2 if asked_again else 1), "only those are asked again, without stream_options"
    assert "maximum context" not in refused.value.detail and "safety system" not in refused.value.detail


def test_garbage_and_huge_400_bodies_say_nothing(upstream_mock, provider) -> None:
    assert refusal_reason(b"\xff\xfe") is None and refusal_reason(b"[1, 2]") is None
    assert refusal_reason(b'{"error": "context length"}') is None
    huge = {"error": {"message": "maximum context length " + "x" * 20_000}}  # past MAX_REFUSAL_BYTES: not read
    route = upstream_mock.post(URL).mock(return_value=httpx.Response(400, json=huge))
    with pytest.raises(UpstreamError) as refused:
        _collect(provider)
    assert refused.value.error_code == "upstream_rejected" and route.call_count == 2


@pytest.mark.parametrize(
    "status,code",
    [
        (401, "upstream_auth_failed"),
        (403, "upstream_auth_failed"),
        (429, "upstream_rate_limited"),
        (302, "upstream_rejected"),
        (307, "upstream_rejected"),
        (404, "upstream_model_unknown"),
        (422, "upstream_rejected"),
        (408, "upstream_unavailable"),
        (500, "upstream_unavailable"),
        (502, "upstream_unavailable"),
        (503, "upstream_unavailable"),
    ],
)
def test_status_errors_are_classified_without_upstream_text(upstream_mock, provider, status, code) -> None:
    route = upstream_mock.post(URL).mock(
        return_value=httpx.Response(status, json=SECRET_BODY, headers={"retry-after-ms": "1500", "x-request-id": "r1"})
    )
    with pytest.raises(UpstreamError) as raised:
        provider._open(CALL, include_usage=False)
    error = raised.value
    assert error.error_code == code
    assert error.upstream_status == status and error.upstream_request_id == "r1"
    assert error.retry_after == 1.5
    assert "LEAKY" not in str(error) + error.detail and "Incorrect" not in error.detail
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert route.call_count == 1, "nothing below the relay retries"


def test_a_404_names_the_model_the_server_does_not_know(upstream_mock, provider) -> None:
    """Issue 82: a typo'd model was a generic 502 "answered HTTP 404"; where the server's own list
    holds the name, the 404 is the address's (the path), not the model's."""
    upstream_mock.post(URL).mock(return_value=httpx.Response(404, json={"error": {"code": "model_not_found"}}))
    with pytest.raises(UpstreamError) as raised:
        provider._open(CALL, include_usage=False)
    assert raised.value.error_code == "upstream_model_unknown" and not raised.value.retryable
    assert f"to the model {CALL.model!r}: it does not know that model name" in raised.value.detail
    provider.listed = frozenset((CALL.model,))
    with pytest.raises(UpstreamError) as listed:
        provider._open(CALL, include_usage=False)
    assert listed.value.error_code == "upstream_rejected"


def test_a_redirect_is_not_followed_and_its_location_goes_to_the_log_only(upstream_mock, provider) -> None:
    upstream_mock.post(URL).mock(return_value=httpx.Response(301, headers={"location": "http://elsewhere.test/v1"}))
    with pytest.raises(UpstreamError) as raised:
        provider.open(CALL)
    assert raised.value.error_code == "upstream_rejected" and "redirect" in raised.value.detail
    assert "elsewhere" not in raised.value.detail
    assert raised.value.log_fields == {"upstream_location": "http://elsewhere.test/v1"}


@pytest.mark.parametrize(
    "side_effect,code",
    [
        (httpx.ConnectError("refused"), "upstream_unavailable"),
        (httpx.ConnectTimeout("slow"), "upstream_timeout"),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "upstream_tls_failed"),
    ],
)
def test_transport_errors(upstream_mock, provider, side_effect, code) -> None:
    upstream_mock.post(URL).mock(side_effect=side_effect)
    with pytest.raises(UpstreamError) as raised:
        provider.open(CALL)
    assert raised.value.error_code == code


@pytest.mark.parametrize(
    "body,code",
    [
        (_sse(_delta("a"), done=False), "upstream_interrupted"),
        (_sse(_delta("a")), "upstream_interrupted"),
        (_garbled(b"data: {oops\n\n"), "upstream_bad_response"),
        (_garbled(b"data: [1, 2]\n\n"), "upstream_bad_response"),
        (_garbled(b'data: {"choices": ["not an object"]}\n\n'), "upstream_bad_response"),
        (_garbled(b'data: {"choices": [{"delta": "text"}]}\n\n'), "upstream_bad_response"),
        (_garbled(b'data: {"choices": [{"delta": {"content": 42}}]}\n\n'), "upstream_bad_response"),
        (_garbled(b'data: {"choices": [{"delta": {"content": ["a"]}}]}\n\n'), "upstream_bad_response"),
        (_garbled(b'data: {"choices": [{"delta": {}, "finish_reason": {"x": 1}}]}\n\n'), "upstream_bad_response"),
        (_garbled(b"data: " + b"[" * 100_000 + b"\n\n"), "upstream_bad_response"),
        (_garbled(b"data: " + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"\n\n"), "upstream_bad_response"),
        (b"data: " + b"x" * 2_000_000 + b"\n\n", "upstream_bad_response"),
        (b"data: " + b"x" * 2_000_000, "upstream_bad_response"),
        (_sse(_delta("a"), {"error": {"message": "boom sk-proj-LEAKYkey0123456789"}}), "upstream_interrupted"),
    ],
)
def test_broken_streams(upstream_mock, provider, body, code) -> None:
    """What ends a reply as broken: a cut, an error chunk, a line too long, and more malformed
    chunks than MAX_SKIPPED_CHUNKS."""
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(UpstreamError) as raised:
        _collect(provider)
    assert raised.value.error_code == code
    assert "LEAKY" not in raised.value.detail


@pytest.mark.parametrize("garbled", [b"data: {oops\n\n", b'data: {"choices": [{"delta": {"content": 42}}]}\n\n'])
def test_a_few_malformed_chunks_are_skipped(upstream_mock, provider, garbled) -> None:
    body = b"".join(
        [
            b"data: " + json.dumps(_delta("a")).encode() + b"\n\n",
            garbled * MAX_SKIPPED_CHUNKS,
            b"data: " + json.dumps(_delta("b", "stop")).encode() + b"\n\ndata: [DONE]\n\n",
        ]
    )
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=body))
    pieces, generation = _collect(provider)
    assert pieces == ["a", "b"] and generation.finish_reason == "stop"


def test_comments_and_other_fields_are_ignored(upstream_mock, provider) -> None:
    body = b": ping\n\nevent: message\nid: 3\ndata:" + json.dumps(_delta("a", "length")).encode() + b"\n\n"
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=body))
    pieces, generation = _collect(provider)
    assert pieces == ["a"] and generation.finish_reason == "length"


def test_escaped_lone_surrogates_are_read(upstream_mock, provider) -> None:
    """orjson refuses an escaped lone surrogate; the chunk is parsed by json instead."""
    body = _sse(_delta("a"), _delta("b", "stop")).replace(b'"a"', b'"a\\ud83d"')
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=body))
    assert _collect(provider)[0] == ["a\ud83d", "b"]


def test_no_compression_is_asked_for_and_a_compressed_reply_is_refused(upstream_mock, provider) -> None:
    """A compressed body could inflate without bound (a gzip bomb): ChatWait asks for identity."""
    body = _sse(_delta("a", "stop"))
    route = upstream_mock.post(URL).mock(
        return_value=httpx.Response(200, content=gzip.compress(body), headers={"content-encoding": "gzip"})
    )
    with pytest.raises(UpstreamError) as raised:
        _collect(provider)
    assert raised.value.error_code == "upstream_bad_response"
    sent = route.calls.last.request.headers
    assert sent.get_list("accept-encoding") == ["identity"]
    assert len(sent.get_list("accept")) == 1 and len(sent.get_list("user-agent")) == 1


def test_describe_has_no_secret(provider) -> None:
    described = provider.describe()
    assert described["upstream"] == "http://upstream.test"
    assert "sk-x" not in json.dumps(described)


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"llm_provider-retry-after": "4"}, 4.0),  # what LiteLLM forwards from the provider behind it
        ({"llm_provider-retry-after": "4", "retry-after": "9"}, 4.0),
        ({}, None),
    ],
)
def test_retry_after(headers, expected) -> None:
    assert retry_after_seconds(httpx.Headers(headers)) == expected


def test_retry_after_http_date() -> None:
    import email.utils
    import time

    value = retry_after_seconds(httpx.Headers({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)}))
    assert 25 < value <= 31


@pytest.mark.parametrize(
    "content",
    ['quotes " \\ control \x1f\n\t\b\f, line separator \u2028, é 🎉', 2**70],
    ids=["text", "beyond-64-bit-int"],
)
def test_request_bodies_are_compact_utf8_json_whichever_encoder_writes_them(upstream_mock, provider, content) -> None:
    """orjson writes the body; json takes what orjson refuses; the bytes are json's either way."""
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, content=_sse(_delta("ok"), _delta(None, "stop")))

    upstream_mock.post(URL).mock(side_effect=answer)
    messages = [{"role": "user", "content": content}]
    with provider.open(ChatCall(model="m", messages=messages, max_tokens=5, temperature=0.7)) as generation:
        assert list(generation) == ["ok"]
    body = {
        "model": "m",
        "messages": messages,
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.7,
    }
    assert sent == [json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()]


def test_with_a_proxy_configured_requests_go_through_it_with_httpx_own_transport(monkeypatch) -> None:
    """The fallback path: proxy variables set, the lean transport steps aside and httpx's own
    transport sends each request to the proxy (absolute-form target), streaming as usual."""
    import http.server
    import threading

    seen: list[tuple[str, str | None]] = []
    body = _sse(_delta("via "), _delta("proxy"), _delta(None, "stop"))

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
    settings = load_settings(environ={"OPENAI_BASE_URL": "http://upstream.test/v1", "OPENAI_API_KEY": "sk-x"})
    provider = OpenAIProvider(settings)
    try:
        assert not isinstance(provider._http._transport, Http1Transport)
        pieces, generation = _collect(provider)
    finally:
        provider.close()
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert pieces == ["via ", "proxy"] and generation.finish_reason == "stop"
    assert seen == [(URL, "Bearer sk-x")]


@pytest.mark.parametrize(
    ("stream_id", "read_to_the_end", "stops"),
    [("9c1e0a", False, 1), ("9c1e0a", True, 0), ("../../admin", False, 0), ("", False, 0)],
)
def test_a_stopped_generation_stops_an_upstream_that_named_its_stream(
    provider, stream_id, read_to_the_end, stops
) -> None:
    """Only a well-formed X-Stream-Id of a reply not yet finished is stopped upstream, with the
    service's credentials, in the background."""
    headers = {"X-Stream-Id": stream_id} if stream_id else {}
    with respx.mock(using="httpx", assert_all_called=False) as upstream:  # the stop's route may be missed
        upstream.post(URL).mock(return_value=httpx.Response(200, headers=headers, content=_sse(_delta("a", "stop"))))
        stop = upstream.delete(f"http://upstream.test/v1/chat/completions/{stream_id}/stream").mock(
            return_value=httpx.Response(200, json={"status": "cancelled"})
        )
        generation = provider.open(CALL)
        if read_to_the_end:
            list(generation)
        generation.stop()
        provider.close()  # waits for stops on their way
    assert stop.call_count == stops
    if stops:
        assert stop.calls[0].request.headers["authorization"] == "Bearer sk-x"


@pytest.mark.parametrize("timings_first", [True, False])
def test_the_cached_part_of_the_prompt_is_read_from_llama_cpps_timings(upstream_mock, provider, timings_first) -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51}
    finish = {**_delta(None, "stop"), "timings": {"cache_n": 40, "prompt_n": 10, "predicted_n": 1}}
    tail = [finish, {"choices": [], "usage": usage}] if timings_first else [{**finish, "usage": usage}]
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=_sse(_delta("x"), *tail)))
    _, generation = _collect(provider)
    assert generation.usage.prompt_tokens == 50 and generation.usage.cached_tokens == 40
    detailed = {**usage, "prompt_tokens_details": {"cached_tokens": 30}}
    upstream_mock.post(URL).mock(
        return_value=httpx.Response(200, content=_sse(_delta("x"), {**finish, "usage": detailed}))
    )
    _, generation = _collect(provider)
    assert generation.usage.cached_tokens == 30, "the usage's own details first"


def test_the_prompt_caches_writes_are_read_from_the_usage(upstream_mock, provider) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}
    for details, written in (({"cached_tokens": 40, "cache_write_tokens": 30}, 30),
                             ({"cached_tokens": 40, "cache_write_tokens": 61}, 0),  # past the prompt: not believed
                             ({"cache_write_tokens": True}, 0)):  # fmt: skip
        said = {**_delta("x", "stop"), "usage": {**usage, "prompt_tokens_details": details}}
        upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=_sse(said)))
        _, generation = _collect(provider)
        assert generation.usage.cache_write_tokens == written, details


def test_the_upstreams_id_of_its_reply_and_its_reasoning_tokens_are_kept(upstream_mock, provider) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
             "completion_tokens_details": {"reasoning_tokens": 3}}  # fmt: skip
    first = {**_delta("x"), "id": "chatcmpl-42"}
    ending = {**_delta(None, "stop"), "usage": usage}
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=_sse(first, ending)))
    _, generation = _collect(provider)
    assert generation.response_id == "chatcmpl-42" and generation.usage.reasoning_tokens == 3
    odd = {**_delta("x"), "id": "x" * 300}  # too long to keep: none
    upstream_mock.post(URL).mock(return_value=httpx.Response(200, content=_sse(odd, _delta(None, "stop"))))
    _, generation = _collect(provider)
    assert generation.response_id == ""
