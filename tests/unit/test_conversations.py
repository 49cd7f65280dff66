"""The conversation store's bounds and expiry (the memory store; the Redis one passes the same
behaviour in tests/integration/test_response_bounds.py), and pages of items."""

from __future__ import annotations

import pytest

from app.apis.items.listing import listed, page
from app.conversations import Bounds, MemoryConversations, encoded
from app.errors import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def item(n: int, size: int = 1) -> dict:
    return {"id": f"msg_{n}", "type": "message", "role": "user", "content": "x" * size}


def test_a_key_keeps_its_most_recently_changed_conversations() -> None:
    store = MemoryConversations(Bounds(per_key=2, items=10, ttl_seconds=60))
    first, second = store.create("k", {}, []), store.create("k", {}, [])
    assert store.append("k", first.id, [item(1)])  # first is now the most recently changed
    third = store.create("k", {}, [])
    assert store.get("k", second.id) is None and store.get("k", first.id) and store.get("k", third.id)
    assert store.get("other", first.id) is None, "another key does not see it"
    assert store.create("other", {}, []).id not in (first.id, third.id)


def test_a_conversation_keeps_its_newest_items_within_the_count_and_the_bytes() -> None:
    one = len(encoded(item(0, 100)))
    store = MemoryConversations(Bounds(per_key=5, items=3, ttl_seconds=60, bytes=one * 2))
    conversation = store.create("k", {}, [item(n, 100) for n in range(4)])
    assert [found["id"] for found in store.items("k", conversation.id)] == ["msg_2", "msg_3"]
    store.append("k", conversation.id, [item(9, 10_000)])
    assert [found["id"] for found in store.items("k", conversation.id)] == ["msg_9"], "the newest always stays"


def test_a_conversation_expires_after_its_last_change() -> None:
    clock = Clock()
    store = MemoryConversations(Bounds(per_key=5, items=3, ttl_seconds=60), clock)
    conversation = store.create("k", {"a": "b"}, [])
    clock.now = 50
    assert store.update("k", conversation.id, {"c": "d"}).metadata == {"c": "d"}
    clock.now = 100
    assert store.items("k", conversation.id) == [], "renewed by the change at 50"
    clock.now = 200
    assert store.get("k", conversation.id) is None and not store.append("k", conversation.id, [item(1)])


def test_deleting_an_item_or_a_conversation() -> None:
    store = MemoryConversations(Bounds(per_key=5, items=5, ttl_seconds=60))
    conversation = store.create("k", {}, [item(1), item(2)])
    assert store.delete_item("k", conversation.id, "msg_1") is True
    assert store.delete_item("k", conversation.id, "msg_1") is False
    assert store.delete_item("k", "conv_nope", "msg_2") is None
    assert store.delete("k", conversation.id) and not store.delete("k", conversation.id)


def test_pages_follow_after_in_either_order() -> None:
    items = [listed({"type": "message", "role": "user", "content": f"m{n}", "id": f"msg_{n}"}) for n in range(5)]
    newest = page(items, {"limit": "2"})
    assert [found["id"] for found in newest["data"]] == ["msg_4", "msg_3"] and newest["has_more"]
    rest = page(items, {"limit": "2", "after": newest["last_id"]})
    assert [found["id"] for found in rest["data"]] == ["msg_2", "msg_1"]
    last = page(items, {"order": "asc", "after": "msg_3"})
    assert [found["id"] for found in last["data"]] == ["msg_4"] and not last["has_more"]
    assert page([], {})["first_id"] is None


@pytest.mark.parametrize(
    ("args", "name"), [({"limit": "0"}, "limit"), ({"limit": "9" * 5000}, "limit"), ({"limit": "\u0661"}, "limit"),
                       ({"order": "up"}, "order"), ({"after": "msg_nope"}, "after")],
)  # fmt: skip
def test_a_bad_page_query_is_a_400_naming_it(args: dict, name: str) -> None:
    with pytest.raises(ApiError) as refused:
        page([listed({"type": "message", "role": "user", "content": "m"})], args)
    assert list(refused.value.fields) == [name]


def test_listed_items_take_openais_shape_and_ids() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    user = listed({"type": "message", "role": "user", "content": [{"type": "text", "text": "hi"}, image]})
    assert user["id"].startswith("msg_") and user["content"] == [
        {"type": "input_text", "text": "hi"},
        {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
    ]
    answer = listed({"type": "message", "role": "assistant", "content": "yes", "phase": "final_answer"})
    assert answer["content"][0]["type"] == "output_text" and answer["phase"] == "final_answer"
    output = listed({"type": "function_call_output", "call_id": "c1", "output": "21 C"})
    assert output["id"].startswith("fco_") and output["status"] == "completed" and output["output"] == "21 C"


def _call(n: int, kind: str = "function_call") -> dict:
    return {"id": f"fc_{n}_{kind}", "type": kind, "call_id": f"call_{n}", "name": "f", "arguments": "{}", "output": ""}


def test_items_go_by_whole_turns_never_leaving_an_output_without_its_call() -> None:
    store = MemoryConversations(Bounds(per_key=5, items=4, ttl_seconds=60))
    parallel = [item(1), _call(1), _call(2), _call(1, "function_call_output"), _call(2, "function_call_output")]
    conversation = store.create("k", {}, [*parallel, item(2)])
    kept = store.items("k", conversation.id)
    assert [found["id"] for found in kept] == ["msg_2"], "the whole first turn went, its outputs with its calls"
    store.append("k", conversation.id, [_call(3), _call(3, "function_call_output"), item(4), _call(5)])
    store.append("k", conversation.id, [_call(5, "function_call_output")])
    kept = [found["id"] for found in store.items("k", conversation.id)]
    assert kept == ["msg_4", "fc_5_function_call", "fc_5_function_call_output"], kept


def test_a_keys_conversations_and_a_workers_share_byte_budgets() -> None:
    one = len(encoded(item(0, 1000)))
    store = MemoryConversations(Bounds(per_key=50, items=10, ttl_seconds=60, key_bytes=one * 3, worker_bytes=one * 5))
    made = [store.create("k", {}, [item(n, 1000)]).id for n in range(5)]
    assert [cid for cid in made if store.get("k", cid)] == made[-3:], "the key's least recently changed went"
    others = [store.create("other", {}, [item(n, 1000)]).id for n in range(3)]
    kept = [cid for cid in made if store.get("k", cid)] + [cid for cid in others if store.get("other", cid)]
    assert len(kept) == 5 and kept[-3:] == others, "the worker's least recently changed went first"


def test_an_integer_beyond_64_bits_is_a_400_not_a_500() -> None:
    store = MemoryConversations(Bounds(per_key=5, items=5, ttl_seconds=60))
    with pytest.raises(ApiError) as refused:
        store.create("k", {}, [{**item(1), "n": 2**70}])
    assert refused.value.status == 400
