"""The journal's standing with a Redis Cluster whose node fails: a stream on that node waits
alone until its retry time, the others go on; how long it has failed counts from its first
failure; an answer ends the wait."""

from __future__ import annotations

from types import SimpleNamespace

from app.streaming.redis.standing import Standing


def _stream(sid: str, written: int = 3) -> SimpleNamespace:
    return SimpleNamespace(stream_id=sid, written=written, ended=False, finished=False)


def test_a_stream_whose_node_fails_waits_alone_until_its_retry_time() -> None:
    standing = Standing()
    there, elsewhere = _stream("there"), _stream("elsewhere")
    for stream in (there, elsewhere):
        standing.adopt(stream)  # taken over: Redis holds its first frame
        stream.written += 2
        standing.dirty[stream.stream_id] = stream
    calls = standing.take(now=10.0)
    assert sorted(call[1].stream_id for call in calls) == ["elsewhere", "there"]
    standing.sending(calls)
    failing = next(call for call in calls if call[1] is there)
    assert not standing.node_failing(failing, retry_at=11.0, now=10.0, grace=2.0)
    assert standing.has_work() and standing.next_due(10.5) == 11.0
    elsewhere.written += 1
    standing.dirty["elsewhere"] = elsewhere
    assert [call[1].stream_id for call in standing.take(now=10.5)] == ["elsewhere"], "the other goes on"
    assert "there" in standing.dirty, "kept, not dropped"
    again = standing.take(now=11.0)
    assert [(call[1].stream_id, call[2], call[3]) for call in again] == [("there", 3, 5)], "from what Redis holds"
    standing.sending(again)
    assert standing.node_failing(again[0], retry_at=13.0, now=12.5, grace=2.0), "cut: failing since its first failure"
    assert "there" in standing.cut
    assert standing.next_due(13.5) is None, "nothing paused past its time"
    (last,) = standing.take(now=13.0)
    standing.sending([last])
    assert standing.booked(last, [b"ok", 5]) == "ok"
    assert standing.next_due(0.0) is None and standing.durable(there), "the node answered: the wait is over"
    assert not standing.node_failing(last, retry_at=20.0, now=19.0, grace=2.0), "a new failure counts from now"
