"""The gunicorn shell: the worker (connections under deadlines, request bodies, protocol
refusals, graceful shutdown), its logger, the master's reload hooks and start-up checks.

Only gunicorn.conf.py, wsgi.py and `create_app` import it; nothing below reaches gunicorn.
"""
