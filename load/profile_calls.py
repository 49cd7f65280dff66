"""Function calls per request of ChatWait's worker, by function, under cProfile: deterministic
where instruction counts need valgrind, so a change's extra calls show by name.

    ./scripts/load profile_calls.py [--root <checkout>] [--family openai] [--top 40]
    ./scripts/load profile_calls.py --root ../old --compare .     # the functions whose calls changed

The worker runs with `load/variants.py`'s `profile` variant; after a warm-up, `--batches` batches
of `--streams` concurrent streams of `--tokens` tokens each are sent, then the worker stops and
its profile (which counts the warm-up too) is read."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.processes import BIN, ROOT, FakeUpstream, free_port  # noqa: E402
from load.bench_instructions import batch  # noqa: E402
from load.variants import gunicorn_args  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--compare", type=Path, help="a second checkout: the calls that differ")
    parser.add_argument("--family", default="native", choices=("native", "openai"))
    parser.add_argument("--keys", default="none", choices=("none", "keyed", "end-user"))
    parser.add_argument("--end-user", dest="end_user", default="user-4711")
    parser.add_argument("--cache", default="off", choices=("off", "miss", "hit"))
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=1)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--time", action="store_true", help="CPU µs by function (its own), not calls")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds the worker then idles before it stops")
    return parser.parse_args()


def calls(root: Path, args: argparse.Namespace) -> dict[str, int]:
    """The calls (or, `--time`, the CPU µs) of each function (file:line:name, relative to `root`)
    during a run; a dataclass's generated `__init__` is `<string>`'s."""
    fake, port = FakeUpstream(), free_port()
    out = tempfile.mktemp(suffix=".pstats")
    env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model",
           "MAX_STREAMS": "20000", "MAX_TOKENS": "20000", "BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT),
           "CHATWAIT_VARIANT": "profile", "CHATWAIT_PROFILE_OUT": out}  # fmt: skip
    command = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", *gunicorn_args("profile", None), "wsgi:app"]
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        for _ in range(args.batches):
            batch(port, args.tokens, args)
        time.sleep(args.idle)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        fake.stop()
    stats = pstats.Stats(out).stats  # type: ignore[attr-defined]
    found: dict[str, int] = {}
    for (path, line, name), (_, ncalls, tottime, _cumulative, _callers) in stats.items():
        where = path.rsplit("site-packages/", 1)[-1].replace(str(root) + "/", "")
        key = f"{where}:{line}:{name}"
        found[key] = found.get(key, 0) + (round(tottime * 1e6) if args.time else ncalls)
    return found


def main() -> None:
    args = arguments()
    requests = args.batches * args.streams
    first = calls(args.root, args)
    unit = "µs of CPU (under cProfile)" if args.time else "calls"
    print(f"{args.root}: {sum(first.values()) / requests:,.0f} {unit} a request")
    if args.compare is None:
        for name, count in sorted(first.items(), key=lambda item: -item[1])[: args.top]:
            print(f"{count / requests:10.1f}  {name}")
        return
    second = calls(args.compare, args)
    print(f"{args.compare}: {sum(second.values()) / requests:,.0f} {unit} a request")
    changed = {name: second.get(name, 0) - first.get(name, 0) for name in {*first, *second}}
    for name, change in sorted(changed.items(), key=lambda item: -abs(item[1]))[: args.top]:
        if change:
            print(f"{change / requests:+10.1f}  {name}")


if __name__ == "__main__":
    main()
