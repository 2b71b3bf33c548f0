"""The package's layout rules (docs/architecture.md): no import circles, between modules or between the
engine's stages; nothing in engine/ imports the package above it; no module over 400 lines; HeadPursuit
under 250 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "headpursuit_widget"
NAME = PACKAGE.name
MAX_LINES = 400


def _modules() -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (file, is a package's __init__)}."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_init = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_init else parts)] = (path, is_init)
    return found


def _imports() -> dict[str, set[str]]:
    """{module: the package's modules it imports}, at any depth of the file (lazy imports included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_init) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_init else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _stage(module: str) -> str | None:
    """The engine subpackage a module belongs to (engine.models, ...), None outside one."""
    parts = module.split(".")
    if parts[:2] == [NAME, "engine"] and len(parts) > 2 and (PACKAGE / "engine" / parts[2]).is_dir():
        return ".".join(parts[:3])
    return None


def test_every_import_of_the_package_resolves():
    """Lazy imports inside functions included: a moved module's relative imports point at real modules."""
    modules = _modules()
    missing = []
    for name, (path, is_init) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(NAME)):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_init else name.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                if base not in modules:
                    missing.append(f"{name}: {base}")
    assert missing == []


def test_no_import_circles():
    assert _cycles(_imports()) == []


def test_no_circles_between_the_engines_stages():
    stages: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        if (stage := _stage(module)) is not None:
            stages.setdefault(stage, set()).update(s for t in targets if (s := _stage(t)) not in (None, stage))
    assert _cycles(stages) == []


def test_the_engine_imports_nothing_above_it():
    upward = {
        (module, target)
        for module, targets in _imports().items()
        if module.startswith(f"{NAME}.engine")
        for target in targets
        if not target.startswith(f"{NAME}.engine")
    }
    assert upward == set()


def test_no_module_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_headpursuit_class_under_250_lines():
    tree = ast.parse((PACKAGE / "widget" / "head_pursuit.py").read_text(encoding="utf-8"))
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "HeadPursuit"]
    assert cls.end_lineno - cls.lineno + 1 < 250


def test_every_subpackage_states_its_role():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(PACKAGE)} has no docstring"


def _walk(model, run) -> list[tuple[str, list[str]]]:
    """The stays of `model` while `run()` goes: each package function that receives `model` as an argument
    (the model's own methods and properties included: `self`), in the order of its first call; consecutive
    functions of one module form one stay. -> [(module, [functions])]."""
    import sys

    first: list[tuple[str, str]] = []

    def profile(frame, event, _arg):
        module, code = frame.f_globals.get("__name__", ""), frame.f_code
        if event != "call" or not module.startswith(NAME + ".") or (module, code.co_name) in first:
            return
        arguments = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(frame.f_locals.get(a) is model for a in arguments):
            first.append((module, code.co_name))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    stays: list[tuple[str, list[str]]] = []
    for module, function in first:
        if stays and stays[-1][0] == module:
            stays[-1][1].append(function)
        else:
            stays.append((module, [function]))
    return stays


def test_the_walk_of_rank_heads_model_is_short(make_tiny, tmp_path, monkeypatch):
    """rank_heads's model, on the default path (eliciting contexts, SOMP, null, selection, with nothing kept
    on disk): at most 15 stays and 6 returns to a module it had left, counting every function it is passed to,
    its own methods too."""
    import headpursuit_widget as hp

    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))  # every pass runs, whatever an earlier run kept
    model = make_tiny("llama")
    stays = _walk(model, lambda: hp.rank_heads(model, None, "colours", n_null=4, progress=False))
    modules = [module for module, _ in stays]
    returns = [m for i, m in enumerate(modules) if m in modules[:i]]
    assert modules[0].endswith("ranking.rank") and any(m.endswith("judging.selection") for m in modules)
    assert len(stays) <= 15 and len(returns) <= 6, "\n".join(f"{m} {f}" for m, f in stays)
