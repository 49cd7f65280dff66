"""A stream's lifecycle, in the order data flows.

`producer.start` runs a generation (`relay`) in its own greenlet, writing SSE events
(`sse`) into a `stream.Stream`, kept by a `store.StreamStore`; each HTTP response is a
`consumer` that replays then follows the stream. Generation is decoupled from the connection:
a dropped client only detaches its consumer. With STREAM_STORE=redis, `redis_store` shares
streams across workers: `redis_journal` writes them, `redis_follow` reads them elsewhere,
`redis_owner` keeps the worker's lease and hears stops, `redis_link` holds the keys and scripts.
"""
