"""What a message asks of the fake upstream (`fake_openai`), the refusals it can answer with,
and what marks a continuation.

Behaviour is chosen per request by `@key=value` directives in the last user message (so
parallel tests do not interfere), falling back to the command-line defaults:

  @tokens=N        reply length in tokens (the reply is "tok0 tok1 ... tok{N-1} ")
  @first_ms=MS     delay before the first token;  @delay_ms=MS  delay between tokens
  @text=unicode    tokens cycle through accents, CJK, emoji, quotes, newlines and markup
  @tokbytes=N      every token is N times "x" (large replies)
  @fault=429|401|500|503   answer with that HTTP error (401 echoes the key, like OpenAI)
  @retry_after=S   Retry-After header of a 429/503
  @fail_times=N    fault (any of them) only the first N requests carrying this exact message
  @fault=reset@K   reset the TCP connection after K tokens
  @fault=stall@K   stop sending after K tokens (the connection stays open)
  @fault=nofinish  end cleanly without a finish_reason
  @fault=badjson@K send one chunk that is not JSON after K tokens, then the rest
  @fault=garbage@K send chunks that are not JSON instead of the tokens from K on
  @fault=errorchunk@K  send an {"error": ...} chunk after K tokens
  @fault=late@MS   the first token after MS (as @first_ms, but a fault: @only and @fail_times apply)
  @fault=nodone    end after the finish chunk (and usage) without `data: [DONE]`
  @fault=context   400: the context length exceeded (vLLM's words); @fault=filter: 400, a content
                   filter (Azure's); @fault=nostreamoptions: 400 to a request with stream_options
  @usage=0         never send usage, even when asked (stream_options.include_usage)
  @finish=REASON   end with this finish_reason instead of `stop` (e.g. eos_token, as some servers do;
                   content_filter: the Messages fake's `refusal`)
  @refusal=N       the reply is a refusal of N pieces (`delta.refusal`), no text
  @reply=request   reply with one token: the JSON of what was asked (model, messages, options)
  @reply=message   reply with the last message itself, its @directives removed, 3 characters a token
  @prefill=reject  400 to a request ending with an assistant message (as a server that takes no prefill)
  @overlap=N       a continuation asked for by message repeats the last N tokens (default 2)
  @seam=chat|restart  the first continuation asked for by message answers as a chat turn ("Sure!
                   Here is the rest:" then the tokens), or starts the reply over in other words
  @only=MODEL      the fault (any of them), @finish and @refusal only for requests of this model
  @limit=max_tokens  stop at the request's max_tokens (or max_completion_tokens) with `length`, as
                   a model does (without it the fake ignores them: the benches' replies stay whole);
                   @limit=llama: as llama.cpp's server, n_predict first (then max_tokens)

A continuation is honoured as a deterministic model would: a request ending with an assistant
message (prefill) goes on after the tokens that message holds; one ending with that message and
ChatWait's request to go on (its directives are the user message's before) starts @overlap tokens
back. A fault's K counts from the reply's start.
"""

from __future__ import annotations

import argparse

UNICODE_TOKENS = ["héllo", " 世界", " 🎉", "\n", ' "quoted"', " <b>&amp;</b>", " \\slash", " naïve", "\t", " Ωmega"]


# 400 answers as providers word them: vLLM's context length, Azure's content filter, a server
# that takes no stream_options (OpenAI's own words for an unknown parameter).
REFUSALS = {
    "context": {
        "message": "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    },
    "filter": {
        "message": "The response was filtered due to the prompt triggering the content management policy.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
    },
    "nostreamoptions": {
        "message": "Unrecognized request argument supplied: stream_options",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    },
}
ASKED_TO_GO_ON = "reply was cut off"  # in ChatWait's request to continue a reply (rescue.CONTINUE_PROMPT)
USUAL = {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature"}


class Directives:
    """The knobs of one request."""

    def __init__(self, text: str, defaults: argparse.Namespace) -> None:
        found = {}
        for word in text.split():
            if word.startswith("@") and "=" in word:
                key, _, value = word[1:].partition("=")
                found[key] = value
        self.tokens = int(found.get("tokens", defaults.tokens))
        self.first_ms = float(found.get("first_ms", defaults.first_ms))
        self.delay_ms = float(found.get("delay_ms", defaults.delay_ms))
        self.unicode = found.get("text") == "unicode"
        self.token_bytes = int(found.get("tokbytes", 0))
        self.echo_request = found.get("reply") == "request"
        self.echo_message = found.get("reply") == "message"
        self.pieces: list[str] | None = None
        self.text: str | None = None
        self.usage = found.get("usage", "1") != "0"
        self.retry_after = found.get("retry_after")
        self.finish = found.get("finish", "stop")
        self.fail_times = int(found["fail_times"]) if "fail_times" in found else None
        fault = found.get("fault", "")
        self.fault, _, at = fault.partition("@")
        self.fault_at = int(at) if at else 0
        self.found = found
        # Of the prompt, what the server says it read from its prompt cache and wrote to it.
        self.cache_read, self.cache_write = int(found.get("cache_read", 0)), int(found.get("cache_write", 0))
        self.typed: dict | None = None  # a reply beyond text (fake_replies)
        self.start = 0  # the first token sent (a continuation's: after what it was given)

    def usage_counts(self, prompt: int, completion: int) -> dict:
        """The usage object a chat completion reports (its prompt cache's part, where asked)."""
        found: dict = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if self.cache_read or self.cache_write:
            found["prompt_tokens_details"] = {"cached_tokens": self.cache_read, "cache_write_tokens": self.cache_write}
        return found
