"""The library never imports its CLI: only command-line modules (cli.py, *_cli.py) may import
bot4.cli."""

from __future__ import annotations

import ast
from pathlib import Path

import bot4

PACKAGE = Path(bot4.__file__).resolve().parent


def _imports_cli(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name == "bot4.cli" or a.name.startswith("bot4.cli.") for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "bot4.cli" or node.module.startswith("bot4.cli."):
                lines.append(node.lineno)
            elif node.module == "bot4" and any(a.name == "cli" for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "bot4.cli":
                lines.append(node.lineno)
    return lines


def test_no_library_module_imports_the_cli():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30 and PACKAGE / "pipeline.py" in modules
    offenders = {}
    for path in modules:
        if path.name == "cli.py" or path.name.endswith("_cli.py"):
            continue
        lines = _imports_cli(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if lines:
            offenders[str(path.relative_to(PACKAGE))] = lines
    assert offenders == {}


def test_the_check_sees_every_spelling():
    for src in ("import bot4.cli", "from bot4.cli import main", "from bot4 import cli",
                "import importlib\nimportlib.import_module('bot4.cli')", "def f():\n    from bot4.cli import x"):
        assert _imports_cli(ast.parse(src)), src
    for src in ("from bot4.sources import load_stream", "import bot4.client", "from bot4 import clim"):
        assert not _imports_cli(ast.parse(src)), src
