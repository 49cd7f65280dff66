"""Resumable streams, in the order data flows.

`producer.start` runs a generation (`app.generation.relay`) in its own greenlet, writing its
events in the stream's `wire` format into a `stream.Stream`, kept by a `store.StreamStore`; each
HTTP response is a `consumer` that replays then follows the stream (`view` is what it reads).
Generation is decoupled from the connection: a dropped client only detaches its consumer, and
`abandon` cancels what nobody follows when others wait. With STREAM_STORE=redis, `redis.store`
shares streams across workers and instances.
"""
