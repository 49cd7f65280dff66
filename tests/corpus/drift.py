"""The table scripts/clients-drift writes into docs/clients.md: each client's pinned version (the
suite's) and newest (installed apart), what its newest sent (requests recorded), and how the
real-client tests and the corpus replay went with the newest.

    python -m tests.corpus.drift DRIFT_DIR PY_CLIENT... -- NODE_CLIENT...
"""

from __future__ import annotations

import collections
import datetime
import importlib.metadata
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
START, END = "<!-- drift:start -->", "<!-- drift:end -->"


def pinned_python(package: str) -> str:
    for name in ("requirements-dev.txt", "requirements.txt"):
        found = re.search(rf"^{re.escape(package)}==(\S+)", (ROOT / name).read_text(), re.MULTILINE | re.IGNORECASE)
        if found:
            return found.group(1)
    return "-"


def pinned_node(package: str) -> str:
    return json.loads((ROOT / "tests" / "node" / "package.json").read_text())["dependencies"].get(package, "-")


def newest_node(drift: Path, package: str) -> str:
    found = drift / "node" / "node_modules" / package / "package.json"
    return json.loads(found.read_text())["version"] if found.exists() else "not installed"


def results(drift: Path) -> dict[str, collections.Counter]:
    """Passed and failed tests by test file, and the first failures' names."""
    by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    path = drift / "results.xml"
    if not path.exists():
        return by_file
    for case in ElementTree.parse(path).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        by_file[module]["skipped" if skipped else "failed" if failed else "passed"] += 1
        if failed:
            by_file[module][f"! {case.get('name', '')[:90]}"] += 1
    return by_file


def table(drift: Path, python_clients: list[str], node_clients: list[str]) -> str:
    lines = [
        f"Run by `scripts/clients-drift` on {datetime.date.today().isoformat()}.",
        "",
        "| client | pinned in the suite | newest | requests recorded from the newest |",
        "|---|---|---|---|",
    ]
    corpus = {}
    for path in sorted((drift / "corpus").glob("*.json")):
        record = json.loads(path.read_text())
        place = (record.get("registry"), record["package"])
        corpus.setdefault(place, []).append(f"{record['client']}: {len(record['requests'])}")
    rows = [("PyPI", p, pinned_python(p), importlib.metadata.version(p)) for p in python_clients]
    rows += [("npm", p, pinned_node(p), newest_node(drift, p)) for p in node_clients]
    for registry, package, pinned, newest in rows:
        recorded = ", ".join(corpus.get((registry, package), [])) or "-"
        lines.append(f"| {package} ({registry}) | {pinned} | {newest} | {recorded} |")
    lines += ["", "| tests, with the newest | passed | failed |", "|---|---|---|"]
    failures = []
    for module, counts in sorted(results(drift).items()):
        lines.append(f"| `{module}` | {counts['passed']} | {counts['failed']} |")
        failures += [f"- `{module}`: {name[2:]}" for name in counts if name.startswith("! ")]
    if failures:
        lines += ["", "Failing with the newest:", "", *failures[:30]]
    return "\n".join(lines)


def main() -> None:
    drift = Path(sys.argv[1])
    rest = sys.argv[2:]
    split = rest.index("--")
    found = table(drift, rest[:split], rest[split + 1 :])
    text = DOC.read_text()
    head, _, tail = text.partition(START)
    _, _, tail = tail.partition(END)
    DOC.write_text(f"{head}{START}\n{found}\n{END}{tail}")
    print(found)


if __name__ == "__main__":
    main()
