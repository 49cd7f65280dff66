"""Instructions per request and per token of ChatWait's worker (or the floor relay's), counted by
callgrind: repeatable where the CPU time of a shared machine is not, so a small change shows.

    ./scripts/load bench_instructions.py                    # this tree, 20 streams of 1 and 41 tokens
    ./scripts/load bench_instructions.py --arm floor_wsgi   # the bare relay, for comparison
    ./scripts/load bench_instructions.py --root ../old      # another checkout
    ./scripts/load bench_instructions.py --variant quiet    # with a trick of load/variants.py
    ./scripts/load bench_instructions.py --keys end-user    # a key with limits, each request an end user's
    ./scripts/load bench_instructions.py --cache miss       # RESPONSE_CACHE on, every request a miss (kept)
    ./scripts/load bench_instructions.py --cache hit        # RESPONSE_CACHE on, every request a hit (replayed)
    ./scripts/load bench_instructions.py --idle 10          # and 10 s of the worker idle, after the requests

The worker runs under `valgrind --tool=callgrind` with instrumentation off; after a warm-up it is
switched on for `--batches` batches of `--streams` concurrent streams of 1 token, then of
`--tokens`: the first count over the requests is a request's cost, the difference over the
extra tokens a token's. Under valgrind the worker is about 50 times slower, so tokens come
`--delay-ms` apart (each still read on its own). Needs Debian's valgrind.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.processes import BIN, ROOT, FakeUpstream, free_port  # noqa: E402
from load.bench_client import MARKERS, one_stream, post_request  # noqa: E402

KEYS = ("none", "keyed", "end-user")  # no client key; a key with limits; and each request an end user's
CACHE = ("off", "miss", "hit")  # the response cache off; on, each request new; on, each request kept already
BENCH_KEY = "bench-key-0123456789abcdef"
_SERIAL = itertools.count()  # what makes each request of `--cache miss` new
from load.variants import gunicorn_args  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", default="chatwait", choices=("chatwait", "floor_wsgi", "floor_flask"))
    parser.add_argument("--variant", action="append", default=[], help="load/variants.py names, repeatable")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--family", default="native", choices=("native", "openai"), help="the API its streams use")
    parser.add_argument("--keys", default="none", choices=KEYS, help="a client key with limits, and end users")
    parser.add_argument("--end-user", dest="end_user", default="user-4711", help="the end user of --keys end-user")
    parser.add_argument("--cache", default="off", choices=CACHE, help="the response cache, and what requests find")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=41)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=60.0)
    parser.add_argument("--idle", type=float, default=0.0, help="also count this many seconds of an idle worker")
    return parser.parse_args()


def start_worker(args: argparse.Namespace, fake: FakeUpstream, out: str) -> tuple[subprocess.Popen, int, int]:
    """gunicorn under callgrind (instrumentation off); its process, port and worker pid."""
    port = free_port()
    env = {
        **os.environ,
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_MODEL": "fake-model",
        "MAX_STREAMS": "20000",
        "MAX_TOKENS": "20000",
        "BIND": f"127.0.0.1:{port}",
        "GUNICORN_TIMEOUT": "3600",
        "PYTHONPATH": str(ROOT),
    }
    if args.cache != "off":
        env["RESPONSE_CACHE"] = "true"
    if args.keys != "none":  # generous limits: counted, never reached
        line = f"{BENCH_KEY} name=bench rpm=1000000 tpm=1000000000 max_streams=100000"
        line += " user_rpm=1000000 user_tpm=1000000000 user_max_streams=100000" if args.keys == "end-user" else ""
        Path(out + ".keys").write_text(line + "\n")
        env["CHATWAIT_API_KEYS_FILE"] = out + ".keys"
    floor = args.arm.startswith("floor")
    variant = None if floor else ",".join(args.variant) or None
    if floor:
        env["FLOOR_APP"] = args.arm.split("_")[1]
    if variant:
        env["CHATWAIT_VARIANT"] = variant
    extra = gunicorn_args(variant, "load.floor_worker.FloorWorker" if floor else None)
    command = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no"]
    command += [f"--callgrind-out-file={out}.%p", str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", *extra, "wsgi:app"]
    proc = subprocess.Popen(command, cwd=args.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc, port, psutil.Process(proc.pid).children()[-1].pid
        except httpx.TransportError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("the server did not start under valgrind within 300 s")


def streamed(
    family: str, tokens: int, delay_ms: float, keys: str = "none", user: str = "", cache: str = "off"
) -> tuple[bytes, bytes]:
    """One stream's request of `family` (the native API, or chat completions), and its token
    marker; with the cache on, at temperature 0 (a request the cache keeps), new each time for
    a miss."""
    message = f"bench @tokens={tokens} @delay_ms={delay_ms}"
    if cache == "miss":
        message += f" {next(_SERIAL)}"
    extra = {} if cache == "off" else {"temperature": 0}
    headers = {} if keys == "none" else {"Authorization": f"Bearer {BENCH_KEY}"}
    if keys == "end-user":
        headers["X-ChatWait-User"] = user
    if family == "openai":
        body = {"model": "fake-model", "messages": [{"role": "user", "content": message}], "max_tokens": tokens}
        body |= {"stream": True, "stream_options": {"include_usage": True}, **extra}
        return post_request("/v1/chat/completions", body, headers), MARKERS["openai"]
    body = {"message": message, "max_tokens": tokens, **extra}
    return post_request("/v1/chat/streaming", body, headers), MARKERS["chatwait"]


def batch(port: int, tokens: int, args: argparse.Namespace) -> None:
    """`args.streams` concurrent streams of `tokens` tokens, each read whole."""
    streams, delay_ms = args.streams, args.delay_ms
    spread = delay_ms / 1000 / streams
    jobs = []
    for i in range(streams):
        request, marker = streamed(args.family, tokens, delay_ms, args.keys, args.end_user, args.cache)
        jobs.append(gevent.spawn(one_stream, port, request, marker, 600, None, i * spread))
    gevent.joinall(jobs)
    counts = [len(job.value["arrivals"]) if job.value else 0 for job in jobs]
    if counts != [tokens] * streams:
        raise SystemExit(f"incomplete streams: {counts}")


def batches(port: int, tokens: int, args: argparse.Namespace) -> None:
    for _ in range(args.batches):
        batch(port, tokens, args)


def counted(worker: int, out: str, run: Callable[[], None]) -> int:
    """The instructions the worker runs during `run()`."""
    control = ["callgrind_control"]
    subprocess.run([*control, "-z", str(worker)], check=True, capture_output=True)
    subprocess.run([*control, "-i", "on", str(worker)], check=True, capture_output=True)
    run()
    subprocess.run([*control, "-i", "off", str(worker)], check=True, capture_output=True)
    before = set(Path(out).parent.glob(f"{Path(out).name}.{worker}*"))
    subprocess.run([*control, "-d", str(worker)], check=True, capture_output=True)
    time.sleep(1)
    dumped = sorted(set(Path(out).parent.glob(f"{Path(out).name}.{worker}*")) - before, key=os.path.getmtime)
    totals = re.search(r"^totals: (\d+)", dumped[-1].read_text(), re.M)
    return int(totals.group(1)) if totals else 0


def main() -> None:
    args = arguments()
    folder = tempfile.mkdtemp(prefix="chatwait-callgrind-")
    out = f"{folder}/callgrind"
    fake = FakeUpstream()
    proc, port, worker = start_worker(args, fake, out)
    try:
        for _ in range(3):
            batch(port, 5, args)  # warm-up, not counted
        requests = args.batches * args.streams
        counts = {}
        for tokens in (1, args.tokens):
            counts[tokens] = counted(worker, out, lambda t=tokens: batches(port, t, args))
        idle = counted(worker, out, lambda: time.sleep(args.idle)) if args.idle else None
    finally:
        proc.terminate()
        proc.wait(60)
        fake.stop()
    per_request = counts[1] / requests
    per_token = (counts[args.tokens] - counts[1]) / requests / (args.tokens - 1)
    report = {
        "arm": args.arm,
        "variant": ",".join(args.variant),
        "family": args.family,
        "keys": args.keys if args.keys != "end-user" else f"end-user {args.end_user}",
        "cache": args.cache,
        "root": str(args.root),
        "instructions_per_request": round(per_request),
        "instructions_per_token": round(per_token),
        "per_token_at_200_tokens": round((per_request + 199 * per_token) / 200),
        "instructions_per_idle_second": None if idle is None else round(idle / args.idle),
        "callgrind_files": folder,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
