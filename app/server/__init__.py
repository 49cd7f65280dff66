"""What runs ChatWait under gunicorn and gevent: the worker, socket and scheduling helpers, start-up.

Nothing here imports the layers above (api, streaming, providers): they use these helpers,
never gevent's or the sockets' internals directly.
"""
