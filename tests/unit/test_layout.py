"""The package layout holds: small modules and functions, imports that run one way, and no
reaching into gevent's internals from the API or the stream lifecycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
# The layers, from the top: a module may import from its own package and from lower ranks.
RANKS = {"api": 5, "streaming": 4, "providers": 3, "metrics": 2, "server": 1, "logs": 1}
BASE_RANK = 0  # config, errors, schemas, ids: beside app/__init__.py
# What the API and the stream lifecycle may use of gevent: its public greenlet API only.
PUBLIC_GEVENT = {"spawn", "sleep", "Timeout", "Greenlet", "joinall"}
WEB_FRAMEWORK = ("flask", "werkzeug")

MODULES = sorted(path for path in APP.rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts)


def _package(module: str) -> str | None:
    """The layer package of `module` (app.api.chat -> api), None for the base pieces."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else None


def _rank(module: str) -> int:
    package = _package(module)
    return BASE_RANK if package is None else RANKS[package]


def _imports(path: Path) -> list[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    return _imports_of(path.read_text(), _name(path), path.name == "__init__.py")


def _imports_of(source: str, module: str, is_package: bool) -> list[str]:
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def _upward(module: str, imports: list[str]) -> list[str]:
    """The imports of `module` that reach a layer above or beside it."""
    own = _package(module)
    wrong = []
    for imported in imports:
        if not imported.startswith("app."):
            continue
        target = _package(imported)
        if target is not None and target == own:
            continue
        if not (_rank(imported) < _rank(module) or (own is None and target is None)):
            wrong.append(imported)
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_and_functions_stay_small(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno - node.lineno + 1 <= MAX_FUNCTION_LINES, f"{node.name} is too long"


@pytest.mark.parametrize("path", [p for p in MODULES if p != APP / "__init__.py"], ids=_name)
def test_imports_run_one_way(path: Path) -> None:
    """api -> streaming -> providers -> metrics -> server, logs -> base pieces; never upwards or sideways."""
    assert _upward(_name(path), _imports(path)) == []


@pytest.mark.parametrize("path", [p for p in MODULES if _package(_name(p)) in ("api", "streaming")], ids=_name)
def test_api_and_streaming_use_only_gevents_public_greenlet_api(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gevent"):
            raise AssertionError(f"from {node.module} import ...: go through app.server instead")
        if isinstance(node, ast.Import):
            assert all(alias.name == "gevent" or not alias.name.startswith("gevent") for alias in node.names)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "gevent":
            assert node.attr in PUBLIC_GEVENT, f"gevent.{node.attr}: go through app.server instead"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if _package(_name(p)) in ("streaming", "providers", "server", "logs")], ids=_name
)
def test_only_the_api_and_the_error_handlers_know_the_web_framework(path: Path) -> None:
    for imported in _imports(path):
        assert not imported.startswith(WEB_FRAMEWORK), f"{_name(path)} imports {imported}"


def test_the_check_sees_upward_and_sideways_imports() -> None:
    """Relative imports are resolved, and a provider importing the API, the server importing the
    logs, or a base piece importing a layer are caught; imports within a package or downwards pass."""
    provider = _imports_of("from ..api import services\nfrom . import tokens\n", "app.providers.openai", False)
    assert provider == ["app.api", "app.api.services", "app.providers", "app.providers.tokens"]
    assert _upward("app.providers.openai", provider) == ["app.api", "app.api.services"]
    assert _upward("app.server.worker", ["app.logs.context"]) == ["app.logs.context"]
    assert _upward("app.errors", ["app.streaming.stream"]) == ["app.streaming.stream"]
    assert _upward("app.api.chat", ["app.streaming.producer", "app.errors", "app.api.intake"]) == []
