"""A stream's lifecycle, in the order data flows.

`producer.start` runs a generation (`relay`) in its own greenlet, writing SSE events
(`sse`) into a `stream.Stream`, kept by a `store.StreamStore`; each HTTP response is a
`consumer` that replays then follows the stream. Generation is decoupled from the connection:
a dropped client only detaches its consumer.
"""
