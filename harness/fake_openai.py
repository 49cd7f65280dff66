"""A fake OpenAI-compatible chat completions server for tests and benchmarks; it speaks
Anthropic's Messages API too (POST /v1/messages: `fake_anthropic`), with the same directives.

Run: python harness/fake_openai.py [--port 0] [--tokens 20] [--delay-ms 0] [--first-ms 0]
It prints `FAKE_OPENAI_PORT=<port>` once listening on 127.0.0.1 (HTTPS with --tls-cert/--tls-key).

Behaviour is chosen per request by `@key=value` directives in the last user message (so
parallel tests do not interfere), falling back to the command-line defaults: `directives`
lists them, and how a continuation is honoured.

Tokens are scheduled on an absolute clock (first_ms + i * delay_ms after the request), chunk
bytes are pre-encoded, TCP_NODELAY is set, connections are kept alive, and a client that
closes its connection mid-reply is noticed at once. GET /_stats lists recent requests with
how each ended (`completed`, `client_closed`, `reset`, ...) and when, for tests.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

import fake_anthropic  # noqa: E402  (beside this script)
import fake_replies  # noqa: E402  (beside this script)
import gevent  # noqa: E402
import gevent.event  # noqa: E402
from clock import ClientGone, PreciseClock, Sending  # noqa: E402  (beside this script)
from directives import ASKED_TO_GO_ON, REFUSALS, UNICODE_TOKENS, USUAL, Directives  # noqa: E402
from gevent.server import StreamServer  # noqa: E402


class FakeOpenAI:
    """The server state: defaults, per-message failure counters, recent request outcomes."""

    def __init__(self, defaults: argparse.Namespace) -> None:
        self.defaults = defaults
        self.attempts: collections.Counter[str] = collections.Counter()
        self.outcomes: collections.deque[dict] = collections.deque(maxlen=5000)
        self.requests = 0
        self._token_cache: dict[tuple[bool, int], bytes] = {}
        self.clock = PreciseClock()

    # --- HTTP plumbing -------------------------------------------------------------------

    def handle(self, sock: socket.socket, address: tuple) -> None:
        """Serve one connection (keep-alive: any number of requests)."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                buffer = self.route(sock, method, path.split("?")[0], headers, body, buffer)
                if buffer is None or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, OSError, ClientGone):
            return
        finally:
            sock.close()

    @staticmethod
    def send_json(sock: socket.socket, status: int, payload: object, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in (extra or {}).items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def route(self, sock, method, path, headers, body, buffer):
        """Answer one request; returns the unread bytes (None: close the connection)."""
        if method == "GET" and path == "/_stats":
            self.send_json(sock, 200, {"requests": self.requests, "outcomes": list(self.outcomes)})
        elif method == "GET" and path in ("/v1/models", "/models"):
            listed = [{"id": name, "object": "model", "owned_by": "fake"} for name in self.defaults.models.split(",")]
            self.send_json(sock, 200, {"object": "list", "data": listed})
        elif method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            return self.completions(sock, headers, json.loads(body or b"{}"), buffer)
        elif method == "POST" and path in ("/v1/messages", "/messages"):
            return self.messages(sock, headers, json.loads(body or b"{}"), buffer)
        else:
            self.send_json(sock, 404, {"error": {"message": "not found"}})
        return buffer

    # --- Anthropic's Messages API: the same replies, in its events (fake_anthropic) ----------

    def messages(self, sock, headers, request, buffer):
        return fake_anthropic.answer(self, sock, headers, request, buffer)

    # --- chat completions -------------------------------------------------------------------

    def completions(self, sock, headers, request, buffer):
        self.requests += 1
        unknown = self.defaults.strict_models and fake_replies.unknown_model(request, self.defaults.models)
        if unknown:
            self.send_json(sock, 404, unknown)  # as OpenAI answers a name it does not know
            return buffer
        request_id = f"req_{self.requests}"
        messages = request.get("messages") or [{}]
        users = [fake_replies._text(m.get("content", "")) for m in messages if m.get("role") == "user"]
        users = users[:-1] if len(users) > 1 and ASKED_TO_GO_ON in users[-1] else users
        last_user = users[-1] if users else ""
        knobs = self._knobs(request, last_user)
        outcome = self._outcome(request_id, request, messages, last_user)
        if "traceparent" in headers:  # the trace the request belongs to (W3C Trace Context)
            outcome["traceparent"] = headers["traceparent"]
        base_headers = {"x-request-id": request_id}
        if self._refused(sock, headers, request, messages, knobs, outcome, base_headers):
            return buffer
        prompt_tokens = fake_replies.prompt_tokens(request)  # images by OpenAI's published rule
        self._echoed(knobs, request, messages)
        if not request.get("stream"):
            self._whole(sock, request, knobs, prompt_tokens, base_headers)
            outcome.update(ended=time.time(), how="completed", tokens=knobs.tokens)
            return buffer
        knobs.start = self.continued_from(knobs, messages)
        if knobs.start:
            outcome["continued_from"] = knobs.start
        self.bad_seam(knobs, messages, last_user)
        include_usage = knobs.usage and bool((request.get("stream_options") or {}).get("include_usage"))
        return self.stream(sock, request, knobs, outcome, buffer, prompt_tokens, include_usage, base_headers)

    def _knobs(self, request: dict, last_user: str) -> Directives:
        """The directives of the last user message, with the typed reply the request calls for;
        a fault limited to another model, or past its `@fail_times`, is no fault."""
        knobs = Directives(last_user, self.defaults)
        if knobs.found.get("only") not in (None, request.get("model")):  # another model's misbehaviour
            knobs.fault, knobs.finish = "", "stop"
            knobs.found = {key: value for key, value in knobs.found.items() if key != "refusal"}
        knobs.typed = fake_replies.typed_reply(request, knobs.found)
        if knobs.typed is not None and knobs.typed["content"] is not None:
            knobs.pieces, knobs.tokens = knobs.typed["content"], len(knobs.typed["content"])
        if knobs.typed is not None and knobs.typed.get("finish"):
            knobs.finish = knobs.typed["finish"]
        if knobs.fault:
            self.attempts[last_user] += 1
            if knobs.fail_times is not None and self.attempts[last_user] > knobs.fail_times:
                knobs.fault = ""  # this message has failed its share: answer normally
        if knobs.fault == "late":
            knobs.first_ms = knobs.fault_at
        cap = request.get("max_completion_tokens") or request.get("max_tokens")
        if knobs.found.get("limit") == "llama":  # llama.cpp's server reads n_predict before max_tokens
            cap = request.get("n_predict", request.get("max_tokens"))
        if knobs.found.get("limit") in ("max_tokens", "llama") and isinstance(cap, int) and 0 < cap < knobs.tokens:
            knobs.tokens, knobs.finish = cap, "length"
        return knobs

    def _outcome(self, request_id: str, request: dict, messages: list[dict], last_user: str) -> dict:
        """The record of this request that the stats tell (updated as it ends)."""
        outcome = {
            "request_id": request_id,
            "started": time.time(),
            "stream": bool(request.get("stream")),
            "message": last_user[:200],
            "messages": len(messages),
            "model": request.get("model"),
        }
        options = request.keys() - USUAL
        if options:  # what a test checks was passed on (not kept for the usual request: the bench's)
            outcome["options"] = {name: request[name] for name in options if name != "tools"}
        self.outcomes.append(outcome)
        return outcome

    def _refused(self, sock, headers, request, messages, knobs, outcome, base_headers) -> bool:
        """Answer with the HTTP error the directives ask for (a status, a refused prefill or
        option); whether it did."""
        if knobs.fault in ("429", "401", "500", "503"):
            status = int(knobs.fault)
            key = headers.get("authorization", "").removeprefix("Bearer ")
            message = {
                401: f"Incorrect API key provided: {key}. You can find your API key at the dashboard.",
                429: f"Rate limit reached for {key[:8]} on requests per min.",
            }.get(status, f"The server had an error processing request from {key}.")
            extra = dict(base_headers)
            if knobs.retry_after is not None:
                extra["Retry-After"] = knobs.retry_after
            self.send_json(sock, status, {"error": {"message": message, "type": "fake_error"}}, extra)
            outcome.update(ended=time.time(), how=f"http_{status}")
            return True
        prefilled = messages[-1].get("role") == "assistant"
        if prefilled and knobs.found.get("prefill") == "reject":
            refused = {"message": "Final assistant message prefill is not supported.", "type": "invalid_request_error"}
            self.send_json(sock, 400, {"error": refused}, base_headers)
            outcome.update(ended=time.time(), how="http_400_prefill")
            return True
        refusal = REFUSALS.get(knobs.fault)
        if refusal is not None and (knobs.fault != "nostreamoptions" or "stream_options" in request):
            self.send_json(sock, 400, {"error": refusal}, base_headers)
            outcome.update(ended=time.time(), how=f"http_400_{knobs.fault}")
            return True
        return False

    @staticmethod
    def _echoed(knobs: Directives, request: dict, messages: list[dict]) -> None:
        """`@echo_request`: the reply is the request (a forced tool too); `@echo_message`: the last message."""
        if knobs.echo_request:
            knobs.typed, knobs.pieces, knobs.finish = None, None, knobs.found.get("finish", "stop")
            knobs.tokens = 1
            knobs.text = json.dumps({k: v for k, v in request.items() if k != "stream"}, sort_keys=True)
        if knobs.echo_message and messages:
            said = re.sub(r"[ \t]*@\w+=\S+", "", str(messages[-1].get("content", "")))
            knobs.pieces = [said[i : i + 3] for i in range(0, len(said), 3)] or [""]
            knobs.tokens = len(knobs.pieces)

    def _whole(self, sock, request: dict, knobs: Directives, prompt_tokens: int, base_headers: dict) -> None:
        """The reply as one chat.completion object, once its tokens' time has passed."""
        gevent.sleep((knobs.first_ms + max(0, knobs.tokens - 1) * knobs.delay_ms) / 1000)
        content = "".join(self.token_text(knobs, i) for i in range(knobs.tokens))
        message = {"role": "assistant", "content": content}
        if knobs.typed is not None:
            message = {**fake_replies.whole_message(knobs.typed), **({"content": content} if content else {})}
        usage = knobs.usage_counts(prompt_tokens, knobs.tokens)
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "model": request.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": knobs.finish}],
            "usage": usage,
        }
        self.send_json(sock, 200, body, base_headers)

    def continued_from(self, knobs: Directives, messages: list[dict]) -> int:
        """The token a continuation starts at (0: the request is no continuation)."""
        asked = len(messages) >= 2 and messages[-2].get("role") == "assistant" and messages[-1].get("role") == "user"
        asked = asked and ASKED_TO_GO_ON in fake_replies._text(messages[-1].get("content", ""))
        if messages[-1].get("role") != "assistant" and not asked:
            return 0
        delivered = fake_replies._text(messages[-1 if not asked else -2].get("content") or "")
        held, index = "", 0
        while index < knobs.tokens and delivered.startswith(held + self.token_text(knobs, index)):
            held += self.token_text(knobs, index)
            index += 1
        return max(0, index - int(knobs.found.get("overlap", 2))) if asked else index

    def bad_seam(self, knobs: Directives, messages: list[dict], last_user: str) -> None:
        """@seam: the first continuation asked for by message goes wrong as a chat model's might."""
        seam = knobs.found.get("seam")
        asked = messages[-1].get("role") == "user" and ASKED_TO_GO_ON in fake_replies._text(messages[-1]["content"])
        if seam not in ("chat", "restart") or not asked:
            return
        self.attempts[("seam", last_user)] += 1
        if self.attempts[("seam", last_user)] > 1:
            return
        words = [f"TOK{i} " for i in range(knobs.tokens)]  # the same reply, other words
        knobs.pieces = ["Sure! ", "Here is the rest: ", *words[knobs.start :]] if seam == "chat" else words
        knobs.start, knobs.tokens = 0, len(knobs.pieces)

    def token_text(self, knobs: Directives, index: int) -> str:
        if knobs.pieces is not None:
            return knobs.pieces[index]
        if knobs.text is not None:
            return knobs.text
        if knobs.token_bytes:
            return "x" * knobs.token_bytes
        return UNICODE_TOKENS[index % len(UNICODE_TOKENS)] if knobs.unicode else f"tok{index} "

    def token_chunk(self, knobs: Directives, index: int) -> bytes:
        """Pre-encoded `"content":...` JSON of token `index`."""
        if knobs.text is not None or knobs.token_bytes or knobs.pieces is not None:
            return json.dumps(self.token_text(knobs, index)).encode()
        key = (knobs.unicode, index)
        cached = self._token_cache.get(key)
        if cached is None:
            cached = self._token_cache[key] = json.dumps(self.token_text(knobs, index)).encode()
        return cached

    def stream(self, sock, request, knobs, outcome, buffer, prompt_tokens, include_usage, base_headers):
        model = json.dumps(request.get("model", "fake-model")).encode()
        prefix = b'{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":' + model
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in base_headers.items()) + "\r\n"
        sock.sendall(head.encode())
        out = Sending(sock, self.clock)
        try:
            out.sent = self._tokens(out, request, knobs, prefix)
            if not self._ended(out, knobs, outcome, prefix, prompt_tokens, include_usage):
                return None
        except (ClientGone, ConnectionError, OSError):
            outcome.update(ended=time.time(), how="client_closed", tokens=out.sent)
            return None
        if out.watcher.ready():
            data = out.watcher.value
            return None if not data else data + buffer
        out.watcher.kill()
        return buffer

    def _tokens(self, out: Sending, request: dict, knobs: Directives, prefix: bytes) -> int:
        """The typed chunks, then the text's, each at its time, up to the fault's token; how many
        text chunks went."""
        reply = json.dumps(knobs.typed or fake_replies.PLAIN)
        typed = fake_replies.encoded_chunks(reply, knobs.found.get("quirk", ""))
        for index, choice in enumerate(typed):
            out.wait_until(knobs.first_ms + index * knobs.delay_ms)
            out.send(b"data: " + prefix + b',"choices":[' + choice + b"]}\n\n")
        top = request.get("top_logprobs", 0) if request.get("logprobs") else None
        sent = 0
        for index in range(knobs.start, knobs.tokens):
            if knobs.fault in ("reset", "stall", "errorchunk") and index == knobs.fault_at:
                break
            out.wait_until(knobs.first_ms + (index - knobs.start + len(typed)) * knobs.delay_ms)
            garbled = knobs.fault == "garbage" and index >= knobs.fault_at
            if garbled or (knobs.fault == "badjson" and index == knobs.fault_at):
                out.send(b"data: {not json\n\n")
                if knobs.fault == "garbage":
                    continue
            logprobs = b"" if top is None else fake_replies.logprobs(self.token_text(knobs, index), index, top)
            delta = b',"choices":[{"index":0,"delta":{"content":' + self.token_chunk(knobs, index) + b"}"
            out.send(b"data: " + prefix + delta + logprobs + b',"finish_reason":null}]}\n\n')
            sent += 1
            out.sent = sent
        return sent

    @staticmethod
    def _ended(out: Sending, knobs: Directives, outcome: dict, prefix: bytes, prompt_tokens: int, usage: bool) -> bool:
        """The stream's end as the fault has it (a reset, a stall, an error chunk, no finish, no
        [DONE]); False when the connection is not left to be used again."""
        sent = out.sent
        if knobs.fault == "reset":
            out.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            outcome.update(ended=time.time(), how="reset", tokens=sent)
            return False
        if knobs.fault == "stall":
            outcome.update(how="stalled", tokens=sent)
            out.wait_until(3_600_000)
        if knobs.fault == "errorchunk":
            out.send(b'data: {"error":{"message":"upstream exploded sk-canary-in-stream-0000"}}\n\n')
        elif knobs.fault != "nofinish":
            finish = json.dumps(knobs.finish).encode()
            out.send(b"data: " + prefix + b',"choices":[{"index":0,"delta":{},"finish_reason":' + finish + b"}]}\n\n")
        if usage:
            counts = knobs.usage_counts(prompt_tokens, sent)
            out.send(b"data: " + prefix + b',"choices":[],"usage":' + json.dumps(counts).encode() + b"}\n\n")
        if knobs.fault != "nodone":
            out.send(b"data: [DONE]\n\n")
        out.sock.sendall(b"0\r\n\r\n")
        outcome.update(ended=time.time(), how="completed", tokens=sent)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=0.0)
    parser.add_argument("--first-ms", dest="first_ms", type=float, default=0.0)
    parser.add_argument("--models", default="fake-model,other-model", help="what GET /models lists (it serves any)")
    parser.add_argument("--strict-models", action="store_true", help="404 a model --models does not list, as OpenAI")
    parser.add_argument("--tls-cert", dest="tls_cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", dest="tls_key", help="the certificate's private key (PEM)")
    args = parser.parse_args()
    fake = FakeOpenAI(args)
    tls = {}
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        tls["ssl_context"] = context
    server = StreamServer((args.host, args.port), fake.handle, backlog=4096, **tls)
    server.init_socket()
    print(f"FAKE_OPENAI_PORT={server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
