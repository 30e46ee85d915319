"""The package's layout holds: every module imports on its own in a fresh interpreter and the
CLI still has every command (no import cycle can drop one), and the layers only import down."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGE = REPO / "medstore"
COMMANDS = [
    "eval", "export", "lineage", "merge", "migrate", "mimic", "plugins", "provenance", "report",
    "revalidate", "review", "run", "samples", "serve", "status", "train", "verify",
]  # fmt: skip
# Which subpackages each one may import (besides itself and the top-level helpers).
LOWER_LAYERS = {
    "warehouse": set(),
    "llm": {"warehouse"},
    "checks": set(),
    "sources": {"warehouse", "checks"},
    "pipeline": {"warehouse", "llm", "sources", "checks"},
    "recipes": {"warehouse", "llm", "sources", "checks", "pipeline"},
    "quality": {"warehouse", "sources", "checks"},
    "training": {"warehouse", "llm", "sources", "checks", "pipeline", "recipes"},
    "serve": {"warehouse", "llm", "sources", "checks", "pipeline", "recipes"},
}
TOP_LEVEL = {"resources", "hookspecs", "plugins", "tables"}


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imported_modules(path: Path) -> set[str]:
    """medstore modules ``path`` imports at run time (``if TYPE_CHECKING:`` blocks aside)."""
    tree = ast.parse(path.read_text())
    hints_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import of {node.module}"
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "medstore" or name.startswith("medstore.")}


CHECK = (
    "import importlib, sys, click; importlib.import_module(sys.argv[1]); "
    "from medstore.cli import cli; print(' '.join(cli.list_commands(click.Context(cli))))"
)


@pytest.mark.slow
def test_every_module_imports_alone_and_leaves_every_command() -> None:
    def check(name: str) -> tuple[str, str]:
        result = subprocess.run(
            [sys.executable, "-c", CHECK, name], capture_output=True, text=True, cwd=REPO,
            timeout=300,
        )  # fmt: skip
        return name, result.stdout.strip() if result.returncode == 0 else result.stderr

    with ThreadPoolExecutor(4) as pool:
        outcomes = dict(pool.map(check, module_names()))
    wrong = {name: out for name, out in outcomes.items() if out.split() != COMMANDS}
    assert not wrong, wrong
    assert len(outcomes) > 60


def test_layers_import_only_downwards() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        layer = parts[0] if len(parts) > 1 else None
        for name in imported_modules(path):
            target = name.split(".")[1] if "." in name else None
            if target is None or target in TOP_LEVEL or target == layer:
                continue
            if layer == "cli":
                continue  # the CLI sits on top of everything
            if target == "cli":
                problems.append(f"{path.relative_to(REPO)} imports the CLI ({name})")
            elif layer in LOWER_LAYERS and target not in LOWER_LAYERS[layer]:
                problems.append(f"{path.relative_to(REPO)} ({layer}) imports {name}")
    assert not problems, "\n".join(problems)


def test_no_module_builds_sql_from_a_multiline_string_outside_sql_files() -> None:
    """SQL lives in sql/: a Python module holding a long SQL statement is a regression."""
    offenders = []
    keywords = ("SELECT ", "INSERT ", "UPDATE ", "CREATE TABLE", "CREATE VIEW")
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "migrations.py":
            continue  # table DDL belongs to its migration
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text.count("\n") >= 3 and any(word in text for word in keywords):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
