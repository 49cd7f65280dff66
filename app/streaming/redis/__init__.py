"""Streams shared by every worker and instance through Redis (STREAM_STORE=redis).

`store` is the Redis stream store; `journal` (with `standing`, `batch`, `pipe`) writes a
worker's frames to Redis ahead of any client; `follow` reads a stream owned elsewhere; `owner`
keeps the worker's lease and hears stops; `link` holds the keys and `scripts`
(`app.connect.redis` reaches one server, a Sentinel-watched primary or a Cluster); `health` and
`checks` tell Redis's failures apart.
"""
