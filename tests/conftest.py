"""Fixture chains: fake upstream -> ChatWait server -> HTTP client; and app -> test client."""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import respx
from hypothesis import settings

from app import build_app, close_app
from app.config import load_settings
from app.http import register_formats
from harness.processes import ChatWaitServer, FakeUpstream
from harness.redis_servers import RedisServer

# The families' stream wires and error shapes, as building an app registers them: the unit
# tests of streams, stores and wires use them without an app.
register_formats()

# The fuzz tests explore new inputs on every local run; in CI (CI=true) they replay a fixed
# sequence, so that a run cannot fail on a new example nobody can see locally.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")


# The files that take longest (minutes of Redis faults, killed workers, restarts), first: the
# suite runs a file per process at a time, in the order collected, so a long file started last
# would be the run's tail. The others keep their order after them.
LONGEST_FIRST = (
    "integration/test_redis_faults.py",
    "integration/test_takeover.py",
    "integration/test_scale_out.py",
    "integration/test_upstream_pool.py",
    "integration/test_one_generation.py",
    "integration/test_fair_admission.py",
    "integration/test_response_bounds.py",
    "integration/test_shutdown.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of LONGEST_FIRST before the others (see there)."""
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}

    def place(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next((rank[name] for name in rank if path.endswith(name)), len(rank))

    items.sort(key=place)  # stable: each file's tests, and the other files, keep their order


@pytest.fixture(scope="module", autouse=True)
def _collected_after_each_module() -> Iterator[None]:
    """A client left unclosed warns when collected: collecting at each module's end names the
    module that leaked it, not whichever later test the garbage collector happened to run in."""
    yield
    gc.collect()


CANARY_KEY = "sk-proj-CANARYkey0123456789abcdefXYZ"
FAKE_MODEL = "fake-model"
ROOT = Path(__file__).resolve().parent.parent


def readme_block(language: str, marker: str, document: str = "README.md") -> str:
    """The code block of `language` in `document` that holds `marker`, as a user would paste it."""
    blocks = re.findall(rf"```{language}\n(.*?)```", (ROOT / document).read_text(encoding="utf-8"), re.DOTALL)
    return next(block for block in blocks if marker in block)


def completion_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log lines that say how generations ended: the request_completed line of a request whose
    generation ended while it was open, else the generation's own (DESIGN §7)."""
    own = ("stream_completed", "stream_cancelled")
    carried = "request_completed"
    return [r for r in records if r.get("event") in own or (r.get("event") == carried and "finish_reason" in r)]


def server_env(upstream_url: str, **overrides: str) -> dict[str, str]:
    """ChatWait's environment for the integration tests (short timeouts and keepalives)."""
    return {
        "OPENAI_BASE_URL": upstream_url,
        "OPENAI_API_KEY": CANARY_KEY,
        "OPENAI_MODEL": FAKE_MODEL,
        "ALLOWED_MODELS": f"{FAKE_MODEL},other-model",
        "TIMEOUT_SECONDS": "5",
        "IDLE_TIMEOUT_SECONDS": "2",
        "KEEPALIVE_SECONDS": "0.5",
        "UPSTREAM_RETRIES": "2",
        # One fake plays every misbehaving server here: the fault tests check each failure's honest
        # ending; rescues and the breaker of a lone server are tested on servers of their own.
        "UPSTREAM_RESCUES": "0",
        "UPSTREAM_TAKEOVERS": "0",  # a dead worker's streams end generation_lost, unless a test asks
        "UPSTREAM_BREAKER_FAILURES": "0",
        "MAX_INPUT_TOKENS": "2000",
        # The reservations the tests count are at 1,024 tokens a reply; the default (each model's
        # own output limit) has tests of its own (test_model_rules), which blank this.
        "MAX_TOKENS": "1024",
        # The fake's models are in no catalog: no worker reads it (its cost: docs/performance.md);
        # the catalog's own tests blank this.
        "MODEL_CATALOG": "false",
        **overrides,
    }


UPSTREAM_KEY = "sk-ant-upstream-" + "0" * 16  # the key of the fake as a Messages API server


def anthropic_upstream(
    fake: FakeUpstream, folder: Path, models: Sequence[str] = (FAKE_MODEL, "other-model"), **fields: str
) -> Path:
    """An UPSTREAMS_FILE with the fake as a server that speaks the Messages API (for `models`)."""
    listing = folder / "upstreams.toml"
    extra = "".join(f'{name} = "{value}"\n' for name, value in fields.items())
    listing.write_text(
        f'[[upstream]]\nname = "claude"\nurl = "{fake.base_url}"\nkind = "anthropic"\n'
        f'api_key = "{UPSTREAM_KEY}"\nmodels = {json.dumps(list(models))}\n{extra}'
    )
    return listing


def admin_instances(fake: FakeUpstream, redis: RedisServer, admin_key: str) -> Iterator[list[ChatWaitServer]]:
    """Two instances of two workers each, sharing `redis`, with the admin API (`admin_key`): a
    module fixture's body."""
    env = server_env(fake.base_url, ADMIN_API_KEY=admin_key, STREAM_STORE="redis", REDIS_URL=redis.url,
                     WEB_CONCURRENCY="2")  # fmt: skip
    running = [ChatWaitServer(env), ChatWaitServer(env)]
    yield running
    for server in running:
        server.stop()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    """The fake OpenAI-compatible upstream."""
    upstream = FakeUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def fake2() -> Iterator[FakeUpstream]:
    """A second fake upstream: a pool's other server."""
    upstream = FakeUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the tests' own on a free loopback port (no system service relied on)."""
    running = RedisServer()
    yield running
    running.stop()


def store_env(request: pytest.FixtureRequest, store: str, workers: int = 2) -> dict[str, str]:
    """The settings of a stream store: memory (one worker), or the tests' Redis with `workers`."""
    if store == "memory":
        return {"STREAM_STORE": "memory"}
    redis_url = request.getfixturevalue("redis_server").url
    return {"STREAM_STORE": "redis", "REDIS_URL": redis_url, "WEB_CONCURRENCY": str(workers)}


def gateways_of(request: pytest.FixtureRequest, env: dict[str, str], store: str) -> list[ChatWaitServer]:
    """The instances of one deployment: one process on the memory store, or two gateways (2 + 1
    workers) on the tests' Redis, sharing it."""
    if store == "memory":
        return [ChatWaitServer({**env, "STREAM_STORE": "memory"})]
    shared = {**env, "STREAM_STORE": "redis", "REDIS_URL": request.getfixturevalue("redis_server").url}
    return [ChatWaitServer({**shared, "WEB_CONCURRENCY": "2"}), ChatWaitServer({**shared, "WEB_CONCURRENCY": "1"})]


@pytest.fixture(scope="session")
def shared_server(fake: FakeUpstream) -> Iterator[ChatWaitServer]:
    """ChatWait under gunicorn/gevent, pointed at the fake upstream: one for the whole session."""
    running = ChatWaitServer(server_env(fake.base_url))
    yield running
    running.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked `both_stores` runs its tests that use `server` once per stream store; marked
    `both_stores("server", "start_server")`, those that start servers of their own too."""
    marker = metafunc.definition.get_closest_marker("both_stores")
    fixtures = (marker.args or ("server",)) if marker is not None else ()
    if "server" in fixtures and "server" in metafunc.fixturenames:
        metafunc.parametrize("server", ["memory", "redis"], indirect=True, scope="module")
    if "start_server" in fixtures and "start_server" in metafunc.fixturenames:
        metafunc.parametrize("start_server", ["memory", "redis"], indirect=True)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, fake: FakeUpstream) -> Iterator[ChatWaitServer]:
    """The shared server; in a module marked `both_stores`, one per stream store (`store_server`)."""
    store = getattr(request, "param", None)
    if store is None:
        yield request.getfixturevalue("shared_server")
        return
    yield from _on_store(request, fake, store)


@pytest.fixture(scope="module", params=["memory", "redis"])
def store_server(request: pytest.FixtureRequest, fake: FakeUpstream) -> Iterator[ChatWaitServer]:
    """A server once per stream store: memory with one worker, Redis with two."""
    yield from _on_store(request, fake, request.param)


def _on_store(request: pytest.FixtureRequest, fake: FakeUpstream, store: str) -> Iterator[ChatWaitServer]:
    running = ChatWaitServer(server_env(fake.base_url, **store_env(request, store)))
    yield running
    running.stop()


@pytest.fixture(params=["memory", "redis"])
def start_store_server(request: pytest.FixtureRequest, fake: FakeUpstream) -> Iterator[Callable[..., ChatWaitServer]]:
    """`start_server` once per stream store."""
    yield from _starting(request, fake, request.param)


def _starting(
    request: pytest.FixtureRequest, fake: FakeUpstream, store: str | None
) -> Iterator[Callable[..., ChatWaitServer]]:
    """Start servers with extra settings (on `store`, when named); stopped after the test."""
    started: list[ChatWaitServer] = []
    on_store = {} if store is None else store_env(request, store)

    def start(**overrides: str) -> ChatWaitServer:
        running = ChatWaitServer(server_env(fake.base_url, **{**on_store, **overrides}))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def http(server: ChatWaitServer) -> Iterator[httpx.Client]:
    """An HTTP client for the shared server."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def sdk(server: ChatWaitServer) -> Iterator[openai.OpenAI]:
    """The openai SDK as a user points it at the module's `server` (no retries: a test sees every answer)."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
        yield client


@pytest.fixture
def start_server(request: pytest.FixtureRequest, fake: FakeUpstream) -> Iterator[Callable[..., ChatWaitServer]]:
    """Start a ChatWait server with extra settings; stopped after the test (in a module marked
    `both_stores`, once per stream store)."""
    yield from _starting(request, fake, getattr(request, "param", None))


UNIT_UPSTREAM = "http://upstream.test/v1"


def mock_upstream() -> respx.MockRouter:
    """A respx router for the OpenAI provider's requests, to use as a context manager.

    It patches the httpx client (`using="httpx"`), not httpcore: the provider's transport
    does not go through httpcore, and every request still passes through its client.
    """
    return respx.mock(using="httpx")


@pytest.fixture
def upstream_mock():
    """`mock_upstream()` for the duration of a test; every route added must be called."""
    with mock_upstream() as router:
        yield router


@pytest.fixture
def app():
    """An app whose upstream is mocked with respx in the tests that call it (built without the
    server's gevent check: Flask's test client drives it)."""
    settings = {
        "OPENAI_BASE_URL": UNIT_UPSTREAM,
        "OPENAI_API_KEY": CANARY_KEY,
        "OPENAI_MODEL": FAKE_MODEL,
        "MAX_INPUT_TOKENS": "200",
        "MAX_BODY_BYTES": "65536",
        "UPSTREAM_RETRIES": "1",
        "TIMEOUT_SECONDS": "3",
    }
    application = build_app(load_settings(settings))
    yield application
    close_app(application)


@pytest.fixture
def client(app):
    """Flask's test client for `app`."""
    return app.test_client()
