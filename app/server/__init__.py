"""What runs ChatWait under gunicorn and gevent: the worker and its logger, scheduling helpers, start-up.

Nothing here imports the layers above (api, streaming, providers): they use these helpers,
never gevent's or the sockets' internals directly.
"""
