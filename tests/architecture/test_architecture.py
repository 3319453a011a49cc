"""The package's shape, checked: one folder per vendor, engines that never name a vendor, imports that
point one way, no import cycles, applied migrations frozen."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers.paths import ROOT

PACKAGE = ROOT / "include" / "latam_messaging"
VENDOR_FOLDERS = {"teleprom", "itd", "wavy"}
#: The top: the only modules that may read the registry (DAG task code, the receiver's and the page's
#: app factories, the rendered report, CLIs).
TOP = {
    "latam_messaging",  # get_provider_info
    "latam_messaging.vendors",
    "latam_messaging.sending.tasks",
    "latam_messaging.webhooks.receiver",
    "latam_messaging.page.app",  # the vendors' page panels
    "latam_messaging.page.actions",  # the page app's write routes: folder → vendor adapter, send DAG
    "latam_messaging.doctor",
    "latam_messaging.__main__",
    "latam_messaging.simulators.__main__",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """``latam_messaging`` modules imported by ``path`` (module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("latam_messaging"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("latam_messaging"))
    return names


def is_vendor(module: str) -> bool:
    return len(module.split(".")) > 1 and module.split(".")[1] in VENDOR_FOLDERS


def test_no_shared_module_names_a_vendor():
    """A fourth vendor is one new folder plus one registry entry: no engine knows vendors by name."""
    word = re.compile(r"\b(teleprom|itd|wavy)\b")
    naming = sorted(
        name for name, path in modules().items() if not is_vendor(name) and word.search(path.read_text())
    )
    assert naming == ["latam_messaging.vendors"]


def test_engines_never_import_a_vendor_or_the_registry():
    known = modules()
    offenders = []
    for name, path in known.items():
        if is_vendor(name) or name in TOP:
            continue
        for target in imports(path, top_level_only=False):
            if target in known and (is_vendor(target) or target == "latam_messaging.vendors"):
                offenders.append((name, target))
    assert offenders == []


def test_vendor_folders_never_import_each_other_or_the_registry():
    known = modules()
    offenders = [
        (name, target)
        for name, path in known.items()
        if is_vendor(name)
        for target in imports(path, top_level_only=False)
        if target in known
        and (target == "latam_messaging.vendors" or (is_vendor(target) and target.split(".")[1] != name.split(".")[1]))
    ]
    assert offenders == []


def test_no_import_cycles():
    known = modules()
    graph = {
        name: {t for t in imports(path, top_level_only=True) if t in known and t != name}
        for name, path in known.items()
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ importing its own submodule is not a cycle of code
    cycles = [c for c in cycles if not all(a.startswith(c[0]) or c[0].startswith(a) for a in c)]
    assert cycles == []


def test_applied_migrations_build_from_frozen_definitions():
    """Migrations 1-3 never read today's schema.py or views.py (a deployed warehouse was built from them)."""
    source = (PACKAGE / "warehouse" / "migrations.py").read_text()
    tree = ast.parse(source)
    for func in (n for n in tree.body if isinstance(n, ast.FunctionDef) and re.match(r"_v[123]_", n.name)):
        used = {n.value.id for n in ast.walk(func) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        assert "schema" not in used and "views" not in used, func.name
