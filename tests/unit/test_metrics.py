"""The metrics' own behaviour: each event moves its series, a relay reports a generation's life,
the gap sample stays bounded, the multiprocess folder is prepared once per server run, and a
retired worker's counts are folded into it once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from app.generation.cancel import StreamCancelled
from app.generation.gaps import SAMPLE_LIMIT, Gaps
from app.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, remove_multiprocess_dir
from app.metrics.catalogue import Metrics, NoMetrics
from app.metrics.folder import retire_worker
from app.providers.base import UpstreamError
from app.providers.call import Usage

from .test_relay import Recorder, ScriptedAttempt, ScriptedProvider, _relay


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value (0 when it has never been set), as a scrape reads it (the live gauges flushed)."""
    metrics.flush()
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_each_event_moves_its_series() -> None:
    metrics = Metrics()
    metrics.request("/v1/chat/wait", "POST", 200)
    metrics.generation_started("m", "openai", "streaming")
    metrics.first_token_after("m", "openai", 0.06)
    assert value(metrics, "chatwait_streams_open", mode="streaming") == 1
    metrics.generation_ended("m", "openai", "stop", False, 1.5, (12, 30, "upstream"))
    metrics.prompt_cached("m", 8)
    metrics.generation_closed("streaming")
    metrics.resumed("chatwait")
    metrics.stopped("already_finished")
    metrics.follower(1)
    metrics.sample(7, 2)
    assert value(metrics, "chatwait_http_requests_total", route="/v1/chat/wait", method="POST", status="200") == 1
    assert value(metrics, "chatwait_streams_started_total", model="m", provider="openai", mode="streaming") == 1
    assert value(metrics, "chatwait_streams_open", mode="streaming") == 0
    assert value(metrics, "chatwait_streams_completed_total", model="m", provider="openai", finish_reason="stop") == 1
    assert value(metrics, "chatwait_tokens_total", model="m", direction="in", source="upstream") == 12
    assert value(metrics, "chatwait_tokens_total", model="m", direction="out", source="upstream") == 30
    assert value(metrics, "chatwait_prompt_cached_tokens_total", model="m") == 8
    first = {"model": "m", "provider": "openai"}
    assert value(metrics, "chatwait_first_token_seconds_bucket", **first, le="0.05") == 0
    assert value(metrics, "chatwait_first_token_seconds_bucket", **first, le="0.075") == 1
    assert value(metrics, "chatwait_stream_duration_seconds_sum", **first) == 1.5
    assert value(metrics, "chatwait_stream_resumes_total", api="chatwait") == 1
    assert value(metrics, "chatwait_stream_stops_total", result="already_finished") == 1
    assert value(metrics, "chatwait_stream_followers") == 1
    assert value(metrics, "chatwait_store_streams") == 7 and value(metrics, "chatwait_local_queue_length") == 2
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain") and b"chatwait_http_requests_total{" in body


def test_an_ending_is_counted_as_completed_cancelled_or_failed() -> None:
    metrics = Metrics()
    for ending, failed in (("length", False), ("cancelled", False), ("upstream_timeout", True)):
        metrics.generation_started("m", "local", "wait")
        metrics.generation_ended("m", "local", ending, failed, 0.2, (1, 2, "estimated"))
        metrics.generation_closed("wait")
    assert value(metrics, "chatwait_streams_completed_total", model="m", provider="local", finish_reason="length") == 1
    assert value(metrics, "chatwait_streams_cancelled_total", model="m") == 1
    assert value(metrics, "chatwait_streams_failed_total", model="m", error_code="upstream_timeout") == 1
    assert value(metrics, "chatwait_tokens_total", model="m", direction="out", source="estimated") == 6
    assert value(metrics, "chatwait_streams_open", mode="wait") == 0


def test_switched_off_every_event_is_ignored() -> None:
    metrics = NoMetrics()
    assert metrics.enabled is False
    metrics.request("/x", "GET", 200)
    metrics.generation_ended("m", "openai", "stop", False, 1.0, (1, 1, "upstream"))
    metrics.watch(lambda: (0, 0))
    metrics.close()


def test_a_relay_reports_a_completed_generation() -> None:
    metrics = Metrics()
    provider = ScriptedProvider(ScriptedAttempt(["a", "b", "c"], usage=Usage(5, 3)))
    outcome = _relay(provider, Recorder(), metrics).run()
    assert outcome.finish_reason == "stop"
    labels = {"model": "m", "provider": "scripted"}
    assert value(metrics, "chatwait_streams_started_total", **labels, mode="streaming") == 1
    assert value(metrics, "chatwait_streams_completed_total", **labels, finish_reason="stop") == 1
    assert value(metrics, "chatwait_first_token_seconds_count", **labels) == 1
    assert value(metrics, "chatwait_stream_duration_seconds_count", **labels) == 1
    assert value(metrics, "chatwait_tokens_total", model="m", direction="out", source="upstream") == 3
    assert value(metrics, "chatwait_streams_open", mode="streaming") == 0


@pytest.mark.usefixtures("sleeps")
def test_a_relay_reports_retries_and_the_failure_that_ended_it() -> None:
    metrics = Metrics()
    unavailable = [UpstreamError("upstream_unavailable", "HTTP 503.", upstream_status=503) for _ in range(3)]
    outcome = _relay(ScriptedProvider(*unavailable), Recorder(), metrics).run()
    assert outcome.error is not None and outcome.error.error_code == "upstream_unavailable"
    assert value(metrics, "chatwait_upstream_retries_total", error_code="upstream_unavailable") == 2
    assert value(metrics, "chatwait_upstream_errors_total", error_code="upstream_unavailable") == 1
    assert value(metrics, "chatwait_streams_failed_total", model="m", error_code="upstream_unavailable") == 1
    assert value(metrics, "chatwait_first_token_seconds_count", model="m", provider="scripted") == 0


def test_a_relay_reports_a_cancelled_generation() -> None:
    metrics = Metrics()
    provider = ScriptedProvider(ScriptedAttempt(["a", StreamCancelled()]))
    outcome = _relay(provider, Recorder(), metrics).run()
    assert outcome.finish_reason == "cancelled"
    assert value(metrics, "chatwait_streams_cancelled_total", model="m") == 1


def test_gaps_give_the_median_and_the_longest_in_bounded_memory() -> None:
    gaps = Gaps()
    assert gaps.median() is None
    now = 0.0
    for index in range(100_000):
        now += 0.030 if index % 10 == 0 else 0.010  # one gap in ten is 30 ms
        gaps.tokens_at(now)
    gaps.tokens_at(now + 2.0)  # one stall
    assert gaps.median() == pytest.approx(0.010)
    assert gaps.longest == pytest.approx(2.0)
    assert len(gaps._sample) < SAMPLE_LIMIT


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.01, 0.03, 2.0]), st.integers(1, 3000)), max_size=40))
def test_tokens_read_together_count_as_they_would_one_by_one(arrivals: list[tuple[float, int]]) -> None:
    together, one_by_one = Gaps(), Gaps()
    now = 0.0
    for gap, count in arrivals:
        now += gap
        together.tokens_at(now, count)
        for _ in range(count):
            one_by_one.tokens_at(now)
    assert together.median() == one_by_one.median() and together.longest == one_by_one.longest
    assert together._sample == one_by_one._sample


@pytest.fixture
def metrics_env() -> Iterator[None]:
    """The variables `prepare_multiprocess_dir` reads and sets, unset during the test, then as before."""
    names = (MULTIPROC_ENV, "CHATWAIT_METRICS_PREPARED_BY", "CHATWAIT_METRICS_CREATED")
    saved = {name: os.environ.pop(name, None) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.mark.usefixtures("metrics_env")
def test_the_multiprocess_folder_is_emptied_once_per_server_run(tmp_path) -> None:
    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"old")
    os.environ[MULTIPROC_ENV] = str(tmp_path)
    assert prepare_multiprocess_dir() == (tmp_path, False)
    assert not stale.exists()
    (tmp_path / "counter_456.db").write_bytes(b"this run's")
    assert prepare_multiprocess_dir() == (tmp_path, False)  # a configuration reload (SIGHUP)
    assert (tmp_path / "counter_456.db").exists(), "the running workers' files stay"


@pytest.mark.usefixtures("metrics_env")
def test_without_a_folder_one_is_made_and_removed() -> None:
    folder, created = prepare_multiprocess_dir()
    try:
        assert created and folder.is_dir() and os.environ[MULTIPROC_ENV] == str(folder)
        assert prepare_multiprocess_dir() == (folder, True)
    finally:
        remove_multiprocess_dir(folder)
    assert not folder.exists()


@pytest.mark.usefixtures("metrics_env")
def test_a_killed_masters_folder_is_removed_by_the_next_start(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    orphan = tmp_path / f"chatwait-metrics-{_dead_pid()}-abc"
    alive = tmp_path / f"chatwait-metrics-{os.getpid()}-def"
    for folder in (orphan, alive):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    folder, _ = prepare_multiprocess_dir()
    try:
        assert not orphan.exists() and alive.exists() and folder.parent == tmp_path
    finally:
        remove_multiprocess_dir(folder)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.usefixtures("metrics_env")
def test_a_retired_workers_counts_are_folded_into_the_archive_once(tmp_path) -> None:
    os.environ[MULTIPROC_ENV] = str(tmp_path)
    key = mmap_key("chatwait_x", "chatwait_x_total", ["route"], ["/a"], "x")
    for pid, value in ((101, 2.0), (102, 3.0)):
        worker = MmapedDict(str(tmp_path / f"counter_{pid}.db"))
        worker.write_value(key, value, 0.0)
        worker.close()
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    retire_worker(101)
    retire_worker(101)  # a second scrape finds nothing more to fold
    retire_worker(102)
    assert sorted(f.name for f in tmp_path.glob("*.db")) == ["counter_archive.db"]
    archive = MmapedDict(str(tmp_path / "counter_archive.db"))
    try:
        assert archive.read_value(key)[0] == 5.0
    finally:
        archive.close()
