"""``make mutants``: mutation testing (mutmut) of the modules that carry the product's promises.

mutmut names a mutated module after its file path and strips only a leading ``src/``; the package
lives in ``include/``. So mutmut runs in ``.mutmut/`` (git-ignored), where ``src`` and ``tests`` are
links to ``include`` and ``tests``, and ``pyproject.toml`` (its ``[tool.mutmut]`` section: which
modules, which fast tests) is the project's own. mutmut copies that into ``.mutmut/mutants/`` and
puts ``mutants/src`` first on ``sys.path``, so the tests import the mutated package.

The ledger's claim has a PostgreSQL statement of its own (``FOR UPDATE SKIP LOCKED``), so the ledger's
tests run on both databases: this script starts one throwaway PostgreSQL cluster for the whole run and
hands it to every test process as ``TEST_POSTGRES_URL`` (each test creates its own database in it).
Everything else runs on SQLite only (``make test`` runs the same SQL on PostgreSQL too).

Then this script prints the score per module (killed / mutants; a timeout counts as killed: the
mutant made a test hang) and rewrites ``docs/mutants-survivors.md``: every mutant that survived,
now or in an earlier run, with its diff and a verdict written by a person — the test that now
kills it, or why it is equivalent. Verdicts already in the file are kept; a new survivor gets
``TODO``. Exit status 1 if a module is under the target (90 %) or a survivor has no verdict.

Usage: ``python scripts/mutants.py [--max-children N] [--keep] [--report-only]``
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutmut"
SURVIVORS = ROOT / "docs" / "mutants-survivors.md"
TARGET = 0.90
KILLED = {1, 3}  # mutmut: tests failed (3 = pytest internal error, also a failure)
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34}
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<status>[^|]*) \| (?P<verdict>.*) \|$")


def prepare(keep: bool) -> None:
    WORK.mkdir(exist_ok=True)
    for name, target in (("src", "include"), ("tests", "tests"), ("pyproject.toml", "pyproject.toml")):
        link = WORK / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            link.symlink_to(ROOT / target)
    if not keep:
        shutil.rmtree(WORK / "mutants", ignore_errors=True)


def mutmut(*args: str, **kwargs) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(executable), *args], cwd=WORK, **kwargs)


def results() -> dict[str, dict[str, int | None]]:
    """module → {mutant name: exit code}, from mutmut's ``.meta`` files."""
    found: dict[str, dict[str, int | None]] = {}
    for meta in sorted((WORK / "mutants" / "src").rglob("*.py.meta")):
        module = str(meta.relative_to(WORK / "mutants" / "src"))[: -len(".py.meta")].replace(os.sep, ".")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            found[module] = codes
    return found


def score_table(found: dict[str, dict[str, int | None]]) -> tuple[list[str], bool]:
    lines = [
        f"{'module':44} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'no tests':>8} {'score':>7}",
    ]
    ok = True
    for module, codes in found.items():
        values = [c for c in codes.values() if c not in SKIPPED]
        killed = sum(c in KILLED for c in values)
        timeout = sum(c in TIMEOUT for c in values)
        survived = sum(c in SURVIVED for c in values)
        no_tests = sum(c in NO_TESTS for c in values)
        score = (killed + timeout) / len(values) if values else 1.0
        ok = ok and score >= TARGET
        mark = "" if score >= TARGET else "  < target"
        lines.append(
            f"{module:44} {len(values):7d} {killed:7d} {timeout:7d} {survived:8d} {no_tests:8d} {score:7.1%}{mark}"
        )
    return lines, ok


def read_verdicts() -> dict[str, str]:
    verdicts: dict[str, str] = {}
    if SURVIVORS.exists():
        for line in SURVIVORS.read_text().splitlines():
            match = ROW.match(line)
            if match:
                verdicts[match["name"]] = match["verdict"].strip()
    return verdicts


def _functions(module: str) -> dict[str, str]:
    """Every function of a mutated module (the original and each mutant) by name → its source."""
    path = WORK / "mutants" / "src" / (module.replace(".", os.sep) + ".py")
    source = path.read_text()
    return {
        node.name: ast.get_source_segment(source, node) or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name
    }


def diff_of(name: str, functions: dict[str, str]) -> str:
    """The lines a mutant changed, as ``- old / + new``."""
    function = name.rsplit(".", 1)[1]
    orig_name = function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    original = functions.get(orig_name, "").replace(orig_name, "f", 1).splitlines()
    mutant = functions.get(function, "").replace(function, "f", 1).splitlines()
    lines = [
        line.strip()
        for line in difflib.unified_diff(original, mutant, lineterm="", n=0)
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))
    ]
    return " / ".join(lines)[:300] or "(no diff)"


def write_survivors(found: dict[str, dict[str, int | None]], table: list[str]) -> list[str]:
    """Rewrite the survivors file; returns the survivors that have no verdict yet."""
    verdicts = read_verdicts()
    codes = {name: code for module in found.values() for name, code in module.items()}
    survivors = sorted(n for n, c in codes.items() if c in SURVIVED or c in NO_TESTS)
    listed = sorted(set(survivors) | {n for n in verdicts if n in codes})
    missing = []
    rows = []
    functions: dict[str, dict[str, str]] = {}
    for name in listed:
        module = name.split(".x", 1)[0]
        if module not in functions:
            functions[module] = _functions(module)
        code = codes[name]
        status = "survives" if name in survivors else "killed now"
        verdict = verdicts.get(name) or "TODO: name the test that kills it, or say why it is equivalent"
        if verdict.startswith("TODO"):
            missing.append(name)
        diff = diff_of(name, functions[module]).replace("|", "\\|").replace("`", "'")
        rows.append(f"| `{name}` | {status} | {verdict} |")
        rows.append(f"|   ↳ | exit {code} | `{diff}` |")
    text = [
        "# Surviving mutants",
        "",
        "Written by `make mutants` (`scripts/mutants.py`). Each mutant that survived a run is listed with",
        "a verdict written by a person: the test that now kills it, or why it is equivalent (no test can",
        "tell it from the original). The script keeps the verdicts and refreshes the status and the diff.",
        "",
        "Last run:",
        "",
        "```",
        *table,
        "```",
        "",
        "| mutant | status | verdict |",
        "|---|---|---|",
        *rows,
        "",
    ]
    SURVIVORS.write_text("\n".join(text))
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=int(os.environ.get("MUTANTS_CHILDREN", "2")))
    parser.add_argument("--keep", action="store_true", help="keep .mutmut/mutants (mutmut reuses its results)")
    parser.add_argument("--report-only", action="store_true", help="do not run mutmut; report the last run")
    args = parser.parse_args()
    prepare(keep=args.keep or args.report_only)
    if not args.report_only:
        sys.path.insert(0, str(ROOT))
        from tests.helpers.postgres import ThrowawayPostgres

        server = None if os.environ.get("TEST_POSTGRES_URL") else ThrowawayPostgres()
        env = dict(os.environ, TEST_POSTGRES_URL=server.url()) if server else None
        started = time.monotonic()
        try:
            run = mutmut("run", "--max-children", str(args.max_children), stdout=subprocess.DEVNULL, env=env)
        finally:
            if server:
                server.stop()
        print(f"mutmut ran for {time.monotonic() - started:.0f}s (exit {run.returncode})")
    found = results()
    if not found:
        print("no mutmut results in .mutmut/mutants: run without --report-only")
        return 1
    table, ok = score_table(found)
    print("\n".join(table))
    missing = write_survivors(found, table)
    print(f"survivors and verdicts: {SURVIVORS.relative_to(ROOT)}")
    if missing:
        print(f"{len(missing)} survivor(s) without a verdict: " + ", ".join(missing[:10]))
    if not ok:
        print(f"a module is under the target of {TARGET:.0%} killed")
    return 0 if ok and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
