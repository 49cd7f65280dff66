"""The benchmark's figures: per-arm summaries, what ChatWait adds over the direct arm, the
spread over rounds, and the outputs (JSON, a Markdown table, a plot)."""

from __future__ import annotations

import json
from pathlib import Path

from load.stats import ms, pct

SELF_CHECK_MS = 1.0  # a cell is invalid when the direct client's inter-token p99 is later than this

PROCESSES = ("client", "fake", "worker")  # whose CPU waits are reported


def summarise(samples: dict) -> dict:
    """Percentiles of one arm's pooled samples."""
    return {
        "errors": samples["errors"],
        "incomplete": samples["incomplete"],
        "ttft_ms": {f"p{q}": ms(pct(samples["ttft"], q)) for q in (50, 95, 99)},
        "gap_ms": {f"p{q}": ms(pct(samples["gaps"], q)) for q in (50, 99)},
        "total_ms": {"p50": ms(pct(samples["totals"], 50))},
        "runqueue_wait_ms": {name: round(samples["runqueue_wait_s"][name] * 1000) for name in PROCESSES},
    }


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def added(server: dict, direct: dict) -> dict:
    """What a server's streaming arm adds over the direct arm (summaries of the same cell)."""
    found = {f"ttft_p{q}_ms": diff(server["ttft_ms"][f"p{q}"], direct["ttft_ms"][f"p{q}"]) for q in (50, 95, 99)}
    found["gap_p99_ms"] = diff(server["gap_ms"]["p99"], direct["gap_ms"]["p99"])
    return found


def cpu_per_token_us(samples: dict, key: str = "cpu") -> float | None:
    """Microseconds of CPU (the worker's, or with key="store_cpu" Redis's) per relayed token."""
    return round(samples[key] / samples["tokens"] * 1e6, 1) if samples["tokens"] else None


def spread(rounds: list[dict], key: str) -> str:
    """`min–max` of one figure over the rounds."""
    values = [r[key] for r in rounds if r.get(key) is not None]
    if not values:
        return "–"
    return f"{min(values):g}–{max(values):g}"


def write_outputs(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    (out / "bench.md").write_text(markdown(report))
    plot(report, out / "bench.png")


def markdown(report: dict) -> str:
    lines = [
        "| streams | tokens | ms/token | arm | added TTFT p50 / p95 / p99 (ms) | p50 over rounds "
        "| added inter-token p99 (ms) | wait added p50 (ms) | CPU/token (µs) | CPU/token over rounds "
        "| errors | incomplete | CPU waits direct / arm (ms) | valid |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in report["cells"]:
        for name, server in cell["servers"].items():
            a, rounds = server["added"], server["rounds"]
            lines.append(
                f"| {cell['concurrency']} | {cell['tokens']} | {cell['delay_ms']:g} | {name} | "
                f"{a['ttft_p50_ms']} / {a['ttft_p95_ms']} / {a['ttft_p99_ms']} | {spread(rounds, 'ttft_p50_ms')} | "
                f"{a['gap_p99_ms']} | {server.get('wait_p50_ms', '–')} | {server['cpu_per_token_us']} | "
                f"{spread(rounds, 'cpu_per_token_us')} | {cell['errors'][name]} | {cell['incomplete'][name]} | "
                f"{_waits(cell, 'direct')} / {_waits(cell, name)} | {'yes' if cell['valid'] else 'NO'} |"
            )
    for cell in report["cells"]:
        if not cell["valid"]:
            lines.append(f"\nNot valid, {cell['concurrency']} streams: {cell.get('invalid_reason')}.")
    for memory in report.get("memory", []):
        lines.append(
            f"\nMemory per open stream, {memory['streams']} streams of {memory['tokens']} tokens at "
            f"{memory['delay_ms']:g} ms/token, after {memory['held_seconds']} s: {memory['kb_per_stream']} KB "
            f"({memory['errors']} errors)."
        )
    growth = report.get("rss_growth")
    if growth:
        lines.append(
            f"\nRSS across {growth['requests']} sequential requests: {growth['rss_after_warmup_mb']} MB after warm-up, "
            f"{growth['rss_end_mb']} MB at the end ({growth['growth_percent']:+}%, {growth['errors']} errors)."
        )
    return "\n".join(lines) + "\n"


def _waits(cell: dict, arm: str) -> int:
    """Milliseconds the client, the fake and the worker spent waiting for a CPU in one arm."""
    return sum(cell["arms"][arm]["runqueue_wait_ms"].values())


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    series: dict[tuple[str, int, float], list[dict]] = {}
    for cell in report["cells"]:
        for name, server in cell["servers"].items():
            series.setdefault((name, cell["tokens"], cell["delay_ms"]), []).append(cell | {"added": server["added"]})
    for (name, tokens, delay), cells in sorted(series.items()):
        cells.sort(key=lambda c: c["concurrency"])
        x = [c["concurrency"] for c in cells]
        label = f"{name}, {tokens} tokens, {delay:g} ms"
        axes[0].plot(x, [c["added"]["ttft_p50_ms"] for c in cells], marker="o", label=f"p50, {label}")
        axes[0].plot(x, [c["added"]["ttft_p95_ms"] for c in cells], marker="x", linestyle="--", label=f"p95, {label}")
        axes[1].plot(x, [c["added"]["gap_p99_ms"] for c in cells], marker="o", label=label)
    titles = ("Added time to first token (ms)", "Added inter-token p99 (ms)")
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xscale("log")
        axis.set_yscale("symlog", linthresh=1)
        axis.set_xlabel("concurrent streams")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("ChatWait overhead over a direct client (same fake upstream, same run)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def invalid_reason(direct_gap_p99: float, delay_ms: float) -> str:
    """Why a cell does not count: the direct client, with no ChatWait in the way, saw its tokens
    late, so the machine was the bottleneck and the cell measures it rather than ChatWait."""
    return (
        f"the direct client (no ChatWait) saw inter-token p99 {direct_gap_p99:.2f} ms for tokens {delay_ms:g} ms "
        f"apart, more than {SELF_CHECK_MS:g} ms late: this machine was busy or short of CPUs (the load generator "
        "and fakes share one), so the cell measures the machine; run it again on a quiet machine, pinned "
        "(the default), or with fewer streams"
    )
