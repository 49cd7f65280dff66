"""Direct writes: a follower that caught up parks and the producer writes the chunks to its
client (those appended before it yields, in one write); whatever else happens wakes it, and its
client sees the stream's bytes exactly once."""

from __future__ import annotations

import gevent
import pytest

from app.streaming.direct import ClientWriter
from app.streaming.stream import Stream
from app.streaming.wire.sse import KEEPALIVE_FRAME, encode_chunk


class Client:
    """A client's socket as the server shell's writer sees it: takes `takes` bytes of each write
    at once (None: all), or fails with `error`; records what reached it, whoever wrote it."""

    def __init__(self, takes: int | None = None, error: OSError | None = None) -> None:
        self.takes = takes
        self.error = error
        self.received = bytearray()
        self.direct = 0  # writes the producer made
        self.rests = 0  # leftovers the follower wrote

    def write_now(self, data: bytes) -> bytes:
        if self.error is not None:
            raise self.error
        self.direct += 1
        taken = len(data) if self.takes is None else min(self.takes, len(data))
        self.received += data[:taken]
        return data[taken:]

    def write_rest(self, rest: bytes) -> None:
        self.rests += 1
        self.received += rest


def _follow(stream: Stream, client: ClientWriter, keepalive: float = 5.0) -> gevent.Greenlet:
    """A follower whose yields (what the server writes) go to the same client, from the start."""

    def run() -> None:
        for frame in stream.follow(None, keepalive, client):
            client.received += frame  # type: ignore[attr-defined]

    follower = gevent.spawn(run)
    gevent.idle()
    return follower


def _stream() -> Stream:
    stream = Stream("s", "c", "m", 0.0)
    stream.append(b"head")
    return stream


def test_chunks_go_to_a_parked_followers_client_from_the_producer() -> None:
    stream, client = _stream(), Client()
    follower = _follow(stream, client)
    frames = [stream.append_chunk(f"t{index}") for index in range(5)]
    assert client.direct == 1, "the first chunk of the loop's turn goes at once"
    gevent.idle()
    assert client.direct == 2, "the four after it in the same turn in one write, the follower left parked"
    gevent.sleep(0.001)  # the loop polls: a new turn
    frames.append(stream.append_chunk("t5"))
    assert client.direct == 3, "a chunk first in its turn goes at once"
    assert bytes(client.received) == b"head" + b"".join(frames)
    stream.append(b"end", final=True)
    follower.join(timeout=1)
    assert follower.successful()
    assert bytes(client.received) == b"".join(stream.follow(None, 1)), "what the client got is the replay"


def test_bytes_the_socket_did_not_take_are_written_by_the_follower_first() -> None:
    stream, client = _stream(), Client(takes=7)
    follower = _follow(stream, client)
    first = stream.append_chunk("a fairly long token")
    second = stream.append_chunk("next")  # the follower is awake: it goes through the server
    gevent.idle()
    assert client.rests == 1 and client.direct == 1
    assert bytes(client.received) == b"head" + first + second
    client.takes = None
    gevent.sleep(0.001)
    third = stream.append_chunk("parked again")
    assert client.direct == 2 and bytes(client.received).endswith(third)
    stream.append(b"end", final=True)
    follower.join(timeout=1)
    assert bytes(client.received) == b"".join(stream.follow(None, 1))


def test_a_failed_write_ends_the_follower_with_that_error() -> None:
    stream, client = _stream(), Client(error=BrokenPipeError(32, "Broken pipe"))
    follower = _follow(stream, client)
    stream.append_chunk("lost")
    follower.join(timeout=1)
    assert isinstance(follower.exception, BrokenPipeError)
    assert bytes(client.received) == b"head", "nothing half written"
    stream.append_chunk("the generation goes on")
    assert stream.last_event_id == 2


def test_the_terminal_frame_a_notice_and_a_keepalive_wake_a_parked_follower() -> None:
    stream, client = _stream(), Client()
    follower = _follow(stream, client, keepalive=0.05)
    stream.set_notice(b"notice\n\n")
    gevent.idle()
    assert bytes(client.received) == b"head" + b"notice\n\n"
    gevent.sleep(0.12)
    assert bytes(client.received).endswith(KEEPALIVE_FRAME), "silence: a keepalive within the period"
    chunk = stream.append_chunk("x")
    stream.append(b"end", final=True)
    follower.join(timeout=1)
    assert follower.successful() and bytes(client.received).endswith(chunk + b"end")


def test_no_keepalive_while_the_producer_writes() -> None:
    stream, client = _stream(), Client()
    follower = _follow(stream, client, keepalive=0.06)
    for index in range(12):
        stream.append_chunk(str(index))
        gevent.sleep(0.01)
    assert KEEPALIVE_FRAME not in client.received
    stream.append(b"end", final=True)
    follower.join(timeout=1)


def test_every_parked_follower_gets_each_chunk_and_one_behind_catches_up() -> None:
    stream = _stream()
    clients = [Client(), Client()]
    followers = [_follow(stream, client) for client in clients]
    frame = stream.append_chunk("both")
    assert [client.direct for client in clients] == [1, 1]
    late = Client()
    joined = gevent.spawn(lambda: [late.received.extend(f) for f in stream.follow(0, 5, late)])
    gevent.idle()
    stream.append_chunk("three")
    stream.append(b"end", final=True)
    gevent.joinall([*followers, joined], timeout=1)
    replay = b"".join(stream.follow(None, 1))
    assert all(bytes(client.received) == replay for client in clients)
    assert bytes(late.received) == replay[len(b"head") :] and frame in late.received


class Journal:
    """Holds written frames until `flush` publishes them, as the Redis store's journal does."""

    def __init__(self) -> None:
        self.stream: Stream | None = None

    def written(self, stream: Stream) -> None:
        self.stream = stream

    def flush(self) -> None:
        assert self.stream is not None
        self.stream.publish(self.stream.written)


@pytest.mark.parametrize("batch", [1, 3])
def test_frames_a_journal_publishes_go_to_parked_followers_too(batch: int) -> None:
    journal = Journal()
    stream = Stream("s", "c", "m", 0.0, journal)
    stream.append(b"head")
    journal.flush()
    client = Client()
    follower = _follow(stream, client)
    for index in range(6):
        stream.append_chunk(f"j{index}")
        if index % batch == batch - 1:
            journal.flush()
    assert client.direct == 6 // batch
    stream.append(b"end", final=True)
    journal.flush()
    follower.join(timeout=1)
    assert bytes(client.received) == b"".join(stream.follow(None, 1))
    assert encode_chunk(6, "j5") in client.received
