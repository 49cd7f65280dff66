"""The catalogue's entries for the model provider's failures (`upstream_*`): what the client is
told when the server behind ChatWait refuses, fails or is misconfigured, and what the operator
checks (logged, never sent)."""

from __future__ import annotations

from .kind import ErrorKind

UPSTREAM: dict[str, ErrorKind] = {
    "upstream_rate_limited": ErrorKind(
        429,
        "The model provider is rate limiting this service.",
        "Try again in a few seconds, or send fewer requests.",
        True,
    ),
    "upstream_auth_failed": ErrorKind(
        502,
        "The model provider rejected this service's credentials.",
        "Retrying will not help: tell the service's operator, who must fix its access to the model provider.",
        False,
        operator="Check OPENAI_API_KEY and OPENAI_BASE_URL.",
    ),
    "upstream_rejected": ErrorKind(
        502,
        "The model provider refused the request.",
        "Check the model name and parameters; retrying the same request will not help.",
        False,
    ),
    "upstream_model_unknown": ErrorKind(
        502,
        "The model server does not know the model asked for.",
        "Retrying will not help: pick another model, or tell the service's operator, who must fix the model's name.",
        False,
        operator="A configured model is not on its server: check the model names in ALLOWED_MODELS, "
        "OPENAI_MODEL or UPSTREAMS_FILE against the server's GET /models (/ready lists the unlisted).",
    ),
    "upstream_misconfigured": ErrorKind(
        502,
        "The service cannot reach its model server: it looks misconfigured.",
        "Retrying will not help soon: tell the service's operator, whose /ready and log say what to fix.",
        False,
        operator="Check the server's address (OPENAI_BASE_URL, ANTHROPIC_BASE_URL or UPSTREAMS_FILE's url) "
        "and that the server is up: see /ready's servers and the upstream_checked lines.",
    ),
    "upstream_tls_failed": ErrorKind(
        502,
        "The model provider's TLS certificate could not be verified.",
        "Retrying will not help: tell the service's operator, who must fix the provider's certificate.",
        False,
        operator="Fix the provider's certificate, or set OPENAI_CA_BUNDLE to the authority that signed it.",
    ),
    "upstream_unavailable": ErrorKind(
        503,
        "The model provider is temporarily unavailable.",
        "Try again in a few seconds.",
        True,
    ),
    "upstream_timeout": ErrorKind(
        504,
        "The model provider did not answer in time.",
        "Try again; if it keeps happening, ask for a shorter reply or try later.",
        True,
    ),
    "upstream_interrupted": ErrorKind(
        502,
        "The model provider's reply was cut off before it finished.",
        "Keep the partial reply if it helps, or try again.",
        True,
    ),
    "upstream_bad_response": ErrorKind(
        502,
        "The model provider sent a reply this service could not read.",
        "Try again; if it keeps happening, tell the service's operator.",
        True,
        operator="Check that OPENAI_BASE_URL points at an OpenAI-compatible server.",
    ),
}
