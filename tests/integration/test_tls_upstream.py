"""An HTTPS upstream, as OpenAI is: the lean transport's TLS path and its certificate check."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import server_env
from ..sse import content_of, expected_reply, parse


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def https_fake(certificate) -> Iterator[FakeUpstream]:
    cert, key = certificate
    upstream = FakeUpstream("--tls-cert", str(cert), "--tls-key", str(key))
    yield upstream
    upstream.stop()


@pytest.mark.parametrize("trust", ["SSL_CERT_FILE", "OPENAI_CA_BUNDLE"])
def test_replies_stream_from_an_https_upstream(https_fake, certificate, trust) -> None:
    assert https_fake.base_url.startswith("https://")
    server = ChatWaitServer(server_env(https_fake.base_url, **{trust: str(certificate[0])}))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for tokens in (15, 40):
                response = http.post("/v1/chat/streaming", json={"message": f"Secure @tokens={tokens}"})
                events, _ = parse(response.content)
                assert events[-1].event == "done" and content_of(events) == expected_reply(tokens)
            reply = http.post("/v1/chat/wait", json={"message": "Secure wait @tokens=5"}).json()
            assert reply["content"] == expected_reply(5)
    finally:
        server.stop()


def test_an_untrusted_certificate_is_refused_once_with_its_reason(https_fake) -> None:
    """Not retried (it would fail the same way), and the error and the log say why."""
    server = ChatWaitServer(server_env(https_fake.base_url, UPSTREAM_RETRIES="2"))
    try:
        message = "Untrusted @tokens=3"
        response = httpx.post(f"{server.url}/v1/chat/wait", json={"message": message}, timeout=30)
        assert response.status_code == 502
        body = response.json()
        assert body["error_code"] == "upstream_tls_failed" and body["retryable"] is False
        assert "self-signed certificate" in body["detail"] and "127.0.0.1" not in body["detail"], "no host to a client"
        records = server.log_records()
        assert not [r for r in records if r.get("event") == "upstream_retry"]
        failures = [r for r in records if r.get("event") == "error_occurred" and r.get("error_code")]
        assert failures[-1]["error_code"] == "upstream_tls_failed"
        assert "OPENAI_CA_BUNDLE" in failures[-1]["action"]
        assert any(r.get("upstream_host") == "127.0.0.1" for r in failures), "the host: the operator's log"
    finally:
        server.stop()
