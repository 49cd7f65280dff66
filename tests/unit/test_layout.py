"""The package layout holds: small modules and functions, imports that run one way without
cycles, the gunicorn shell reached only from the top, no API family importing another, and no
reaching into gevent's internals from the views, the service, the generations or the streams."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
MAX_MODULE_LINES = 400
WARN_MODULE_LINES = 300  # past this, the test run names the module (a warning, not a failure)
MAX_FUNCTION_LINES = 40
MAX_TOP_MODULES = 5  # app/__init__.py and the base pieces beside it
# The layers, from the top: a module may import from its own package and from lower ranks.
RANKS = {
    "server": 13,
    "http": 12,
    "apis": 11,
    "service": 10,
    "limits": 9,
    "conversations": 9,
    "keystore": 9,
    "spend": 9,
    "alerts": 9,
    "response_cache": 9,
    "streaming": 8,
    "generation": 7,
    "accounts": 6,
    "providers": 5,
    "metrics": 4,
    "traces": 4,
    "connect": 3,
    "hub": 2,
    "logs": 1,
}
BASE_RANK = 0  # config, errors, ids: beside app/__init__.py
# What the views, the generations and the streams may use of gevent: its public greenlet API only.
PUBLIC_GEVENT = {"spawn", "sleep", "Timeout", "Greenlet", "joinall"}
WEB_FRAMEWORK = ("flask", "werkzeug")
SHARED_APIS = ("items",)  # packages under apis/ that families share: not families themselves

MODULES = sorted(path for path in APP.rglob("*.py"))


def _name(path: Path) -> str:
    """A module's dotted name; a package's `__init__.py` is the package itself (app.limits)."""
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts).removesuffix(".__init__")


KNOWN = {_name(path) for path in MODULES}


def _package(module: str) -> str | None:
    """The layer package of `module` (app.apis.native.views -> apis), None for the base pieces."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else None


def _rank(module: str) -> int:
    package = _package(module)
    return BASE_RANK if package is None else RANKS[package]


def _imports(path: Path) -> list[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    return _imports_of(path.read_text(), _name(path), path.name == "__init__.py")


def _imports_of(source: str, module: str, is_package: bool, known: set[str] = KNOWN) -> list[str]:
    """What `module` imports, as Python runs it: `from P import m` imports the module P.m where
    there is one, else the names of P (its `__init__`); `import P.m` imports P.m. A package's own
    relative imports start from the package itself (`is_package`: an `__init__.py`)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            if len(submodules) < len(node.names) or base not in known:
                found.append(base)  # a name the package itself defines (or one outside the app)
            found += submodules
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


HARNESS = sorted((APP.parent / "harness").glob("*.py"))  # the fakes and process helpers: the same caps


def _data(node: ast.AST) -> bool:
    """Whether an expression is data: literals, names, and displays and constructor calls of them
    (a table of entries, a Lua script's text), with no code of its own (no lambda, no comprehension)."""
    if isinstance(node, ast.Constant | ast.Name | ast.Attribute | ast.JoinedStr):
        return True
    if isinstance(node, ast.Dict):
        return all(_data(part) for part in [*(key for key in node.keys if key is not None), *node.values])
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(_data(element) for element in node.elts)
    if isinstance(node, ast.Starred | ast.UnaryOp):
        return _data(node.value if isinstance(node, ast.Starred) else node.operand)
    if isinstance(node, ast.BinOp):
        return _data(node.left) and _data(node.right)
    if isinstance(node, ast.Call):
        arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
        return isinstance(node.func, ast.Name | ast.Attribute) and all(_data(part) for part in arguments)
    return False


def _code_lines(source: str) -> int:
    """A module's lines of code: its lines but those of its data tables and scripts (a module-level
    assignment whose value is data, `_data`), which grow with what they list, not with the code."""
    tree = ast.parse(source)
    data = [
        node.end_lineno - node.lineno + 1
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and _data(node.value)
    ]
    return len(source.splitlines()) - sum(data)


@pytest.mark.filterwarnings("default::UserWarning")  # shown in the summary; the cap fails
@pytest.mark.parametrize("path", MODULES + HARNESS, ids=_name)
def test_modules_and_functions_stay_small(path: Path) -> None:
    """Modules of code split by meaning before they grow past the cap (their data tables aside),
    and functions short (their bodies: however the formatter lays their signature out)."""
    source = path.read_text()
    lines = _code_lines(source)
    assert lines <= MAX_MODULE_LINES
    if lines > WARN_MODULE_LINES:
        warnings.warn(f"{_name(path)} has {lines} lines of code: split it by meaning", stacklevel=1)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # its body: the formatter lays out the rest
            assert node.end_lineno - node.body[0].lineno + 1 <= MAX_FUNCTION_LINES, f"{node.name} is too long"


def test_a_data_table_is_not_code() -> None:
    table = 'TABLE = {\n    "a": Kind(400, "what"),\n    "b": Kind(401, "x" + "y"),\n}\nSCRIPT = """\nreturn 1\n"""\n'
    code = (
        "ORDER = [name for name in TABLE]\nHANDLERS = {name: lambda: name for name in TABLE}\n\n\ndef f():\n    pass\n"
    )
    assert _code_lines(table) == 0
    assert _code_lines(table + code) == len(code.splitlines())


@pytest.mark.parametrize("path", HARNESS, ids=lambda path: path.stem)
def test_the_harness_imports_nothing_of_the_app(path: Path) -> None:
    """The fakes and process helpers stand outside the app (they speak its protocols, as a real
    model server or client would), so that a test through them tests the app, not a copy of it."""
    imported = _imports_of(path.read_text(), f"harness.{path.stem}", False)
    assert [name for name in imported if name == "app" or name.startswith("app.")] == []


def test_no_view_or_hook_is_a_coroutine() -> None:
    """The app runs every view and hook as it is (app.http.SyncFlask skips Flask's check for
    coroutines): a coroutine function anywhere in app/ would be returned unawaited."""
    found = [
        f"{_name(path)}.{node.name}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.AsyncFunctionDef)
    ]
    assert found == []


@pytest.mark.parametrize("path", [p for p in MODULES if p != APP / "__init__.py"], ids=_name)
def test_imports_run_one_way(path: Path) -> None:
    """http -> apis -> service -> limits -> streaming -> generation -> providers -> metrics ->
    connect -> hub -> logs -> base pieces; never upwards or sideways."""
    assert _upward(_name(path), _imports(path)) == []


@pytest.mark.parametrize("path", [p for p in MODULES if _package(_name(p)) != "server"], ids=_name)
def test_only_the_top_reaches_the_gunicorn_shell(path: Path) -> None:
    """app.server is reached from gunicorn.conf.py, wsgi.py and create_app, never from below."""
    allowed = path == APP / "__init__.py"
    reached = [name for name in _imports(path) if name == "app.server" or name.startswith("app.server.")]
    assert allowed or reached == []


def test_no_module_imports_itself_back() -> None:
    """No import cycle, whether the imports run at start-up, in a function or for type checks only,
    a package's `__init__.py` included."""
    graph = {_name(path): sorted({name for name in _imports(path) if name in KNOWN}) for path in MODULES}
    assert _cycles(graph) == []


def test_a_package_file_is_read_as_its_package() -> None:
    """A package's relative imports start from the package; `from . import m` needs the module m,
    `from . import NAME` the package's own names: a package and a module of it that import each
    other's names are a cycle (as the response cache's were), a package importing its modules is not."""
    known = {"app.cache", "app.cache.store", "app.cache.keying", "app.limits", "app.limits.limits"}
    package = _imports_of("from .store import Store\nfrom . import keying\n", "app.cache", True, known)
    assert package == ["app.cache.store", "app.cache.keying"]
    module = _imports_of("from . import HIT, keying\nfrom ..limits import Limits\n", "app.cache.store", False, known)
    assert module == ["app.cache", "app.cache.keying", "app.limits"]
    assert _cycles({"app.cache": package, "app.cache.store": module}) == [["app.cache", "app.cache.store"]]
    fixed = _imports_of("from . import keying\n", "app.cache.store", False, known)
    assert _cycles({"app.cache": package, "app.cache.store": fixed}) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": ["b"], "b": []}) == []


def test_the_top_of_app_holds_only_the_base_pieces() -> None:
    """Each concept has its package: at most a few modules beside app/__init__.py, and no file
    whose prefix stands in for a package (openai_*, redis_*)."""
    top = sorted(path.name for path in APP.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    prefixed = [str(p.relative_to(APP)) for p in MODULES if p.name.startswith(("openai_", "redis_"))]
    assert prefixed == [], prefixed


def _family(module: str) -> str | None:
    """The API family of `module` (app.apis.responses.views -> responses), None outside one."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "apis" and parts[2] not in SHARED_APIS and (APP / "apis" / parts[2]).is_dir():
        return parts[2]
    return None


def _other_families(module: str, imports: list[str]) -> list[str]:
    """The imports of `module` that reach an API family other than its own (a module beside the
    families, shared by them, may reach none)."""
    own = _family(module)
    return [name for name in imports if _family(name) not in (None, own)]


@pytest.mark.parametrize("path", [p for p in MODULES if _package(_name(p)) == "apis"], ids=_name)
def test_no_api_family_imports_another(path: Path) -> None:
    """Each family is a folder of its own over the shared pieces: adding one touches no other."""
    assert _other_families(_name(path), _imports(path)) == []


def test_the_family_check_sees_a_family_reaching_another() -> None:
    assert _other_families("app.apis.responses.intake", ["app.apis.chat_completions.intake"]) == [
        "app.apis.chat_completions.intake"
    ]
    assert _other_families("app.apis.streams", ["app.apis.native"]) == ["app.apis.native"]
    assert _other_families("app.apis.responses.views", ["app.apis.openai", "app.apis.responses.wire"]) == []
    assert _family("app.apis.schema") is None and _family("app.apis.native.wire") == "native"
    assert _family("app.apis.items.input") is None
    assert _other_families("app.apis.items.input", ["app.apis.responses.wire"]) == ["app.apis.responses.wire"]
    assert _other_families("app.apis.conversations.views", ["app.apis.items.input"]) == []


def test_every_family_is_registered_once() -> None:
    """A family's folder is one line in app.http.FAMILIES, and every line is a folder."""
    from app.http import FAMILIES

    packages = [p for p in (APP / "apis").iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    folders = sorted(p.name for p in packages if p.name not in SHARED_APIS)
    registered = sorted(family.blueprint.import_name.split(".")[2] for family in FAMILIES)
    assert registered == folders


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, []):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, []):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _package(_name(p)) in ("http", "apis", "service", "streaming", "generation")],
    ids=_name,
)
def test_views_generations_and_streams_use_only_gevents_public_greenlet_api(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gevent"):
            raise AssertionError(f"from {node.module} import ...: go through app.hub instead")
        if isinstance(node, ast.Import):
            assert all(alias.name == "gevent" or not alias.name.startswith("gevent") for alias in node.names)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "gevent":
            assert node.attr in PUBLIC_GEVENT, f"gevent.{node.attr}: go through app.hub instead"


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in MODULES
        if _package(_name(p))
        in ("service", "limits", "streaming", "generation", "providers", "metrics", "traces", "connect", "hub", "logs")
    ],
    ids=_name,
)
def test_only_the_views_and_the_server_know_the_web_framework(path: Path) -> None:
    for imported in _imports(path):
        assert not imported.startswith(WEB_FRAMEWORK), f"{_name(path)} imports {imported}"


def test_the_check_sees_upward_and_sideways_imports() -> None:
    """Relative imports are resolved, and a provider importing the views, the hub importing the
    streams, or a base piece importing a layer are caught; imports within a package or downwards pass."""
    provider = _imports_of("from ...http import page\nfrom . import stream\n", "app.providers.openai.client", False)
    assert provider == ["app.http.page", "app.providers.openai.stream"]
    assert _upward("app.providers.openai.client", provider) == ["app.http.page"]
    assert _upward("app.hub.scheduling", ["app.streaming.stream"]) == ["app.streaming.stream"]
    assert _upward("app.errors", ["app.streaming.stream"]) == ["app.streaming.stream"]
    assert _upward("app.apis.native.views", ["app.streaming.producer", "app.errors", "app.apis.intake"]) == []
    assert _upward("app.service.services", ["app.apis.request"]) == ["app.apis.request"]


def _named_in(doc: str) -> set[str]:
    """The module names a page names in backticks: `name`, `name.py`, or a path ending in one."""
    return {m.group(1) for m in re.finditer(r"`(?:[a-z_0-9]+/)*([a-z_0-9]+)(?:\.py)?/?`", doc)}


def test_the_architecture_page_names_every_module() -> None:
    named = _named_in((APP.parent / "docs" / "architecture.md").read_text())
    missing = [_name(path) for path in MODULES if path.stem != "__init__" and path.stem not in named]
    assert not missing, f"docs/architecture.md does not name {missing}"


MAP_LINE_CHARS = 100
MAP_PATHS = ("A streamed HTTP request", "A WebSocket turn", "The Redis write path", "A generation's account")


def test_the_architecture_page_reads_as_a_map() -> None:
    """Lines of normal length, and one small diagram for each of the four paths."""
    page = (APP.parent / "docs" / "architecture.md").read_text()
    long = [number for number, line in enumerate(page.splitlines(), 1) if len(line) > MAP_LINE_CHARS]
    assert long == [], f"docs/architecture.md lines over {MAP_LINE_CHARS} characters: {long}"
    for path in MAP_PATHS:
        section = page.split(f"### {path}\n", 1)
        assert len(section) == 2, f"docs/architecture.md has no section for {path!r}"
        diagram = section[1].split("```", 2)
        assert section[1].startswith("\n```") and len(diagram) == 3, f"{path!r} opens with no diagram"
        assert 3 <= len(diagram[1].strip().splitlines()) <= 20, f"{path!r}: a diagram of a few lines"


# In a diagram: a path under app/ (`service/admitting`, `apis/<family>/views`), then perhaps a name
# in it and an attribute of that (`service/running.Runner.stream`); or a class and perhaps its
# attribute (`Payer(key, user)`, `Account.close(outcome)`, `Standing.booked`).
_DIAGRAM_PATH = re.compile(r"(?<![\w/])((?:[a-z_<>]+/)+[a-z_]*)((?:\.[A-Za-z_]+)*)")
# A lower-case name and an attribute, not after a path: an object of a class (`account.delivery`
# is an Account's), else a module's top-level name (`producer.start`).
_DIAGRAM_OBJECT = re.compile(r"(?<![\w./:])([a-z_]+)\.([a-z_]+)")
_DIAGRAM_CLASS = re.compile(r"(?<![\w./])([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*)(?=[(.])((?:\.[A-Za-z_]+)*)")


def _definitions() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Every module's names (by its path under app/: its top-level names, and `Class.attribute`
    for its classes'), and every class's attributes (by its name: methods, fields, what its
    methods set on `self`, and its bases' within the app)."""
    modules: dict[str, set[str]] = {}
    classes: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for path in MODULES:
        tree = ast.parse(path.read_text())
        names = modules[str(path.relative_to(APP).with_suffix("")).removesuffix("/__init__")] = _top_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found = _attributes(node)
                classes.setdefault(node.name, set()).update(found)
                names.update(f"{node.name}.{attribute}" for attribute in found)
                bases.setdefault(node.name, []).extend(ast.unparse(base) for base in node.bases)
    for name, parents in bases.items():
        for parent in parents:
            classes[name] |= classes.get(parent, set())
    return modules, classes


def _top_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _attributes(node: ast.ClassDef) -> set[str]:
    found = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.FunctionDef):
            found.add(inner.name)
        elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
            found.add(inner.target.id)
        elif (
            isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store) and ast.unparse(inner.value) == "self"
        ):
            found.add(inner.attr)
    return found


def _missing_in_diagram(diagram: str, modules: dict[str, set[str]], classes: dict[str, set[str]]) -> list[str]:
    """The names a diagram uses that the tree does not define."""
    missing = [
        path + chain
        for path, chain in _DIAGRAM_PATH.findall(diagram)
        if not _path_defined(path, chain, modules, classes)
    ]
    for name, chain in _DIAGRAM_CLASS.findall(diagram):
        attributes = chain.split(".")[1:]
        if name not in classes or (attributes and attributes[0] not in classes[name]):
            missing.append(name + chain)
    stems = {module.rsplit("/", 1)[-1] for module in modules}
    for owner, attribute in _DIAGRAM_OBJECT.findall(diagram):
        if owner.capitalize() in classes:  # an object of its class: `account.close` is Account's
            if attribute not in classes[owner.capitalize()]:
                missing.append(f"{owner}.{attribute}")
        elif owner in stems and not any(
            attribute in names for module, names in modules.items() if module.rsplit("/", 1)[-1] == owner
        ):
            missing.append(f"{owner}.{attribute}")
    return missing


def _path_defined(path: str, chain: str, modules: dict[str, set[str]], classes: dict[str, set[str]]) -> bool:
    """Whether a module (or package) ends with `path` (`<family>`: any family) and defines the
    name `chain` starts with (a top-level name, or a class's attribute: `services.admit` is
    Services'), whose attribute, if it names one, its class has."""
    pattern = re.compile("(^|/)" + re.escape(path.rstrip("/")).replace(re.escape("<family>"), "[a-z_]+") + "$")
    found = [module for module in modules if pattern.search(module)]
    attributes = chain.split(".")[1:]
    if not found or not attributes:
        return bool(found)
    first = attributes[0]
    named = any(first in modules[module] or any(n.endswith("." + first) for n in modules[module]) for module in found)
    return named and (len(attributes) < 2 or attributes[1] in classes.get(first, set()))


def test_every_name_a_diagram_uses_exists() -> None:
    page = (APP.parent / "docs" / "architecture.md").read_text()
    modules, classes = _definitions()
    diagrams = [section.split("```", 2)[1] for section in page.split("\n### ")[1:] if "```" in section]
    assert len(diagrams) >= len(MAP_PATHS)
    missing = [name for diagram in diagrams for name in _missing_in_diagram(diagram, modules, classes)]
    assert missing == [], f"docs/architecture.md's diagrams name what the tree does not have: {missing}"


def test_the_diagram_check_sees_a_wrong_name() -> None:
    modules, classes = _definitions()
    wrong = "redis/pipe ─▶ journal.booked ─▶ Journal.booked ─▶ service/services.admitted ─▶ accounts/ledger"
    assert _missing_in_diagram(wrong, modules, classes) == [
        "service/services.admitted",
        "accounts/ledger",
        "Journal.booked",
        "journal.booked",
    ]
    assert _missing_in_diagram("account.release ─▶ producer.start ─▶ producer.begin", modules, classes) == [
        "account.release",
        "producer.begin",
    ]
    right = "apis/<family>/views ─▶ Standing.booked ─▶ Payer(key, user) ─▶ service/running.Runner.stream"
    assert _missing_in_diagram(right, modules, classes) == []


def test_the_page_check_reads_names_and_paths() -> None:
    assert _named_in("the `pool` and `streaming/redis/pipe`, `ids.py`; not plain words") == {"pool", "pipe", "ids"}


def test_the_tests_page_names_every_test_file() -> None:
    page = (APP.parent / "tests" / "README.md").read_text()
    named = set(re.findall(r"`(?:[a-z_0-9]+/)*(test_[a-z_0-9]+\*?)`", page))
    prefixes = tuple(name[:-1] for name in named if name.endswith("*"))
    files = sorted((APP.parent / "tests").glob("*/test_*.py"))
    missing = [f.name for f in files if f.stem not in named and not f.stem.startswith(prefixes or ("\0",))]
    assert not missing, f"tests/README.md does not name {missing}"
