"""What runs ChatWait under gunicorn and gevent: the worker (connections under deadlines, request
bodies, protocol refusals, graceful shutdown) and its logger, scheduling helpers, start-up, and
the watch for a client that leaves.

Nothing here imports the layers above (api, streaming, providers): they use these helpers,
never gevent's or the sockets' internals directly.
"""
