"""The API families, one package each over one generation core: `native` (the service's own chat
API), `chat_completions` (OpenAI's chat completions and models), `responses` (OpenAI's Responses
API). Each holds what only it knows: its blueprint and views, its request intake, its request
and reply schemas, its error shape, its stream's wire writer and its reply objects; it exposes
one `FAMILY`, registered by one line in `app.http.FAMILIES`.

What they share sits beside them: `schema` (the strict base, field kinds, `serialise`), `shapes`
(the error-shape registry), `openai` (what the two OpenAI families share), `intake` (the JSON
body, validation, a conversation's size), `streams` and `queued` (starting, resuming, stopping
a stream), `request` (the request context a view reads), `family` (what registering one does).
No family imports another (a test checks); see docs/architecture.md for the recipe of a new one.
"""
