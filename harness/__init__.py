"""The test harness, shared by the tests and the benchmarks (`load/`): the fake upstreams of each
kind (`fake_openai`, serving the Messages API too with `fake_anthropic`; their replies in
`fake_replies`), hostile ones (`hostile_upstream`), proxies that cut or stall a connection
(`proxy`, `upstream_servers`), and the processes a test starts and stops: ChatWait under
gunicorn, the fakes, llama.cpp's server, Redis with its Sentinel and Cluster set-ups
(`processes`, `redis_servers`)."""
