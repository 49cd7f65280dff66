"""The error catalogue: every error a client can get, by code, with what happened, what to do,
whether a retry may succeed, its HTTP status and its Retry-After (see `app.errors`), the model
provider's failures (`upstream_*`) among them."""

from __future__ import annotations

from .kind import ErrorKind

CATALOGUE: dict[str, ErrorKind] = {
    "invalid_json": ErrorKind(
        400,
        "The request body is not valid JSON.",
        'Send a UTF-8 JSON object such as {"message": "Hello"} with Content-Type: application/json.',
        False,
    ),
    "validation_error": ErrorKind(
        400,
        "The request body has invalid or unknown fields.",
        "Fix the fields named in `fields` and send the request again.",
        False,
    ),
    "input_too_long": ErrorKind(
        400,
        "The conversation is longer than the model's maximum context length.",
        "Drop the oldest history messages or shorten the message, then send the request again.",
        False,
    ),
    "invalid_last_event_id": ErrorKind(
        400,
        "The last event id is not valid for this stream.",
        "Send the `id` of the last event you received (a whole number), or none to replay from the start.",
        False,
    ),
    "bad_http_request": ErrorKind(
        400,
        "The request is not valid HTTP/1.1.",
        "Send one well-formed request per message: CRLF line ends, valid header names, and either one "
        "Content-Length or Transfer-Encoding: chunked. Open a new connection to try again.",
        False,
    ),
    "invalid_api_key": ErrorKind(
        401,
        "The request has no valid API key.",
        "Send the header Authorization: Bearer <key> with a key the operator of this service gave you.",
        False,
    ),
    "origin_not_allowed": ErrorKind(
        403,
        "This web page's origin may not call ChatWait from a browser.",
        "Ask the operator to add the origin to CORS_ORIGINS, or call ChatWait from your server.",
        False,
    ),
    "not_found": ErrorKind(404, "There is no such endpoint.", "Check the path against /openapi.yaml.", False),
    "stream_not_found": ErrorKind(
        404,
        "No stream with this id exists: it is unknown or has expired.",
        "Streams stay resumable for a limited time after they end; send the message again with "
        "POST /v1/chat/streaming.",
        False,
    ),
    "response_not_found": ErrorKind(
        404,
        "No stored response with this id exists: it is unknown, was not stored, or has expired.",
        "Send the whole conversation in input instead (responses are kept for RESPONSE_TTL_SECONDS).",
        False,
    ),
    "content_policy_violation": ErrorKind(
        400,
        "The model provider refused the request under its content policy.",
        "Change what the request asks for; the same request would be refused again.",
        False,
    ),
    "conversation_not_found": ErrorKind(
        404,
        "No conversation with this id exists for your key: it is unknown, was deleted, or has expired.",
        "Create one with POST /v1/conversations (conversations are kept CONVERSATION_TTL_SECONDS after "
        "their last change).",
        False,
    ),
    "item_not_found": ErrorKind(
        404,
        "The conversation holds no item with this id.",
        "List its items with GET /v1/conversations/{id}/items.",
        False,
    ),
    "model_not_found": ErrorKind(
        404,
        "There is no such model here.",
        "List the models this service allows with GET /v1/models.",
        False,
    ),
    "model_not_allowed": ErrorKind(
        403,
        "This client key may not use that model.",
        "Ask for one of the models the key allows, or ask the operator to allow it for the key.",
        False,
    ),
    "end_user_blocked": ErrorKind(
        403,
        "The operator has blocked this end user on this client key.",
        "Ask the application's operator; the key's other end users are not affected.",
        False,
    ),
    "key_not_found": ErrorKind(
        404,
        "No client key with this id is managed here.",
        "List the keys with GET /v1/admin/keys.",
        False,
    ),
    "key_conflict": ErrorKind(
        409,
        "The change conflicts with the keys as they are.",
        "Read the message: pick another name, or change a key of the key file in the file.",
        False,
    ),
    "key_busy": ErrorKind(
        409,
        "The key was changed by other requests at the same moment, again and again; this change was not made.",
        "Read the key again (GET /v1/admin/keys/{id}) and send the change again.",
        True,
        1.0,
    ),
    "method_not_allowed": ErrorKind(
        405,
        "This endpoint does not accept that HTTP method.",
        "Use one of the methods listed in the Allow header.",
        False,
    ),
    "upgrade_required": ErrorKind(
        426,
        "This endpoint has no WebSocket mode.",
        "Send a plain HTTP request here; WebSocket mode is on GET /v1/responses.",
        False,
    ),
    "websocket_connection_limit_reached": ErrorKind(
        400,
        "This WebSocket has been open as long as one may be.",
        "Open a new WebSocket and continue: previous_response_id works across sockets for stored responses.",
        False,
    ),
    "unknown_client_event": ErrorKind(
        400,
        "The WebSocket message is not an event this socket takes.",
        'Send {"type": "response.create", ...} with the fields of POST /v1/responses.',
        False,
    ),
    "nothing_to_resume": ErrorKind(
        409,
        "This response has ended and its last event is the one you gave.",
        "You have all of it: read it with GET /v1/responses/{id} (a stored one), or start the next turn.",
        False,
    ),
    "too_many_pending_turns": ErrorKind(
        429,
        "Too many turns are waiting on this WebSocket.",
        "Send the next response.create once a turn has ended.",
        True,
    ),
    "request_timeout": ErrorKind(
        408,
        "The request did not arrive in time.",
        "Send the whole request without pausing; if it keeps happening, check the network between you and the service.",
        True,
    ),
    "payload_too_large": ErrorKind(
        413,
        "The request body is larger than this server accepts.",
        "Shorten the message or the history and send the request again.",
        False,
    ),
    "request_line_too_long": ErrorKind(
        414,
        "The request line (method and URL) is too long.",
        "Shorten the URL: what the request carries belongs in its JSON body.",
        False,
    ),
    "unsupported_media_type": ErrorKind(
        415,
        "The request body must be JSON.",
        "Send the body with the header Content-Type: application/json.",
        False,
    ),
    "expectation_failed": ErrorKind(
        417,
        "The Expect header asks for something this server does not do.",
        "Send the request without Expect, or with Expect: 100-continue.",
        False,
    ),
    "headers_too_large": ErrorKind(
        431,
        "The request has too many headers, or one that is too long.",
        "Send fewer and shorter headers and try again.",
        False,
    ),
    "server_busy": ErrorKind(
        503,
        "The server is handling as many replies as it can.",
        "Try again in a few seconds.",
        True,
        retry_after=2.0,
    ),
    "service_restarting": ErrorKind(
        503,
        "The service is restarting and stopped this generation.",
        "Send the request again in a moment; the text received so far stays valid.",
        True,
        retry_after=1.0,
    ),
    "store_unavailable": ErrorKind(
        503,
        "The stream store (Redis) is not answering.",
        "Try again in a few seconds; replies already finished can be resumed once it is back. If it "
        "keeps happening, tell the service's operator.",
        True,
        retry_after=1.0,
        operator="Check that Redis is up and REDIS_URL points at it.",
    ),
    "generation_lost": ErrorKind(
        503,
        "The server generating this reply stopped unexpectedly (a crash or a lost connection).",
        "Send the message again; the text received so far stays valid.",
        True,
        retry_after=1.0,
    ),
    "rate_limited": ErrorKind(
        429,
        "This client key is at one of its limits.",
        "Wait the seconds Retry-After says, then send the request again; if this is your usual load, ask "
        "the operator for higher limits.",
        True,
        retry_after=1.0,
        operator="A client key reached a limit set for it (CHATWAIT_API_KEYS_FILE, KEY_* defaults).",
    ),
    "budget_exhausted": ErrorKind(
        429,
        "This client key has spent its budget for the day or the month.",
        "Wait until the budget resets (Retry-After says when), or ask the operator for a larger budget.",
        True,
        retry_after=60.0,
        operator="A client key spent its budget_day or budget_month (CHATWAIT_API_KEYS_FILE).",
    ),
    # The model provider's failures: what the client is told when the server behind ChatWait refuses,
    # fails or is misconfigured, and what the operator checks (logged, never sent).
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
    "unsupported_transfer_encoding": ErrorKind(
        501,
        "The request body uses a Transfer-Encoding this server does not support.",
        "Send the body with Content-Length, or with Transfer-Encoding: chunked.",
        False,
    ),
    "internal_error": ErrorKind(
        500,
        "Something went wrong inside ChatWait.",
        "Try again; if it keeps happening, give the operator the correlation id shown with this error.",
        True,
    ),
}
