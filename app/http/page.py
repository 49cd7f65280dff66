"""The chat page at GET / and the admin page at GET /admin: static HTML, CSS and JavaScript from
app/static, nothing from elsewhere."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app

bp = Blueprint("page", __name__)

# The page loads only its own files and talks only to this service; text is never HTML.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.get("/")
def index() -> Response:
    """The chat page."""
    response = current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.get("/admin")
def admin() -> Response:
    """The admin page (the keys, the spend); it asks for the admin key, as the API does."""
    response = current_app.send_static_file("admin.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


_COMMON_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"))


def _common_headers(response: Response) -> Response:
    """Headers every response gets: no MIME sniffing, no referrer sent on (a view's own win)."""
    headers = response.headers
    # One pass over the names: werkzeug's setdefault builds an exception for every missing one.
    present = {name.lower() for name, _ in headers}
    headers.extend([(name, value) for name, value in _COMMON_HEADERS if name.lower() not in present])
    return response


def init_app(app: Flask) -> None:
    """Register the page and the headers every response gets."""
    app.register_blueprint(bp)
    app.after_request(_common_headers)
