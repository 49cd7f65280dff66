"""The types the newest openai and anthropic Python SDKs publish, read from their type definitions
(the SDKs' source, parsed, never imported: they are installed apart, `requirements-sdk.txt`, and
openai 3 needs another HTTP client than the one the suite runs).

`published(root, module, name)` follows a type alias (`Union`, `List`, `Iterable`, …) through the
modules that define its members, to the `type` literals of the TypedDicts it names: the shapes a
client may send at that place of a request.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
from pathlib import Path

SDK_TYPES = Path(os.environ.get("CHATWAIT_SDK_TYPES") or Path(sys.prefix) / "sdk-types")


@functools.cache
def _module(path: Path) -> dict[str, ast.AST | tuple[Path, str]]:
    """A module's top-level names: classes and aliases as their nodes, imports as (module path, name)."""
    found: dict[str, ast.AST | tuple[Path, str]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
        elif isinstance(node, ast.ImportFrom) and node.level:
            folder = path.parent
            for _ in range(node.level - 1):
                folder = folder.parent
            target = folder.joinpath(*(node.module or "").split("."))
            for alias in node.names:
                source = target.with_suffix(".py") if target.with_suffix(".py").exists() else target / "__init__.py"
                found[alias.asname or alias.name] = (source, alias.name)
    return found


def _literals(node: ast.AST) -> set[str]:
    """The strings of every `Literal[...]` in an annotation."""
    found = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Subscript) and isinstance(inner.value, ast.Name) and inner.value.id == "Literal":
            constants = (c for c in ast.walk(inner.slice) if isinstance(c, ast.Constant))
            found |= {c.value for c in constants if isinstance(c.value, str)}
    return found


def _field(node: ast.ClassDef, name: str) -> ast.AST | None:
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and getattr(statement.target, "id", None) == name:
            return statement.annotation
    return None


def _names(node: ast.AST) -> list[str]:
    """The type names an alias's expression refers to (its members, whatever wraps them)."""
    return [inner.id for inner in ast.walk(node) if isinstance(inner, ast.Name)]


def published(root: Path, module: str, name: str, field: str = "type") -> set[str]:
    """The `field` literals (the `type`s) of every TypedDict the alias or class `name` of `module`
    (a path under `root`, dotted) comes to."""
    return _resolve(root.joinpath(*module.split(".")).with_suffix(".py"), name, field, frozenset())


def _resolve(path: Path, name: str, field: str, seen: frozenset[tuple[Path, str]]) -> set[str]:
    if (path, name) in seen:
        return set()
    seen = seen | {(path, name)}
    node = _module(path).get(name)
    if isinstance(node, tuple):
        return _resolve(*node, field, seen)
    if isinstance(node, ast.ClassDef):
        annotation = _field(node, field)
        return _literals(annotation) if annotation is not None else set()
    if node is None:
        return set()  # a builtin or typing name (str, Union, Iterable...)
    found: set[str] = set()
    for inner in _names(node):
        found |= _resolve(path, inner, field, seen)
    return found


def field_of(root: Path, module: str, name: str, field: str) -> ast.AST | None:
    """The annotation of `field` in the class `name` of `module` (None: not there)."""
    node = _module(root.joinpath(*module.split(".")).with_suffix(".py")).get(name)
    return _field(node, field) if isinstance(node, ast.ClassDef) else None


def published_in_field(root: Path, module: str, name: str, field: str) -> set[str]:
    """The `type`s of what the `field` of class `name` holds (a message's content parts, say)."""
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    annotation = field_of(root, module, name, field)
    found: set[str] = set()
    for inner in _names(annotation) if annotation is not None else ():
        found |= _resolve(path, inner, "type", frozenset())
    return found
