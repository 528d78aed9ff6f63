"""README.md's examples work as printed.

Every ```python block runs as its own script in a temporary folder (a fresh interpreter, with a
timeout). A block whose code reads recorded data (``../shared/data``, the BOT4_DATA directory) is
skipped without that data, the way tests/recordings.py skips realdata tests, and fails instead
under BOT4_REQUIRE_DATA=1; its ``../shared/data`` paths are pointed at BOT4_DATA. A block opts out
only with ``<!-- not-run: reason -->`` on the line before its fence; each such block is reported as
a skip carrying that reason, so `pytest -ra` lists them.

Every ``bot4 ...`` command of a ```bash / ```console / ```sh block, and every ``$ bot4 ...`` line of
any block, goes through the CLI's own argument parser (bot4.cli.build_parser().parse_args): the
options and values must exist, but nothing is executed.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from recordings import DATA_DIR, REQUIRE_DATA, data_available, missing_reason

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TIMEOUT_S = 600          # the slowest block (a streamed 200k-event backtest) takes well under this
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")
COMMAND_LANGS = {"bash", "console", "sh", "shell"}
DATA_MARKERS = ("shared/data", "BOT4_DATA")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int            # line of the opening fence, 1-based
    code: str
    not_run: str | None  # the reason of a `<!-- not-run: reason -->` marker before the fence


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the opt-out marker that precedes each."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^```\s*([\w+-]*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if j == len(lines):
            raise ValueError(f"README.md:{start + 1}: unclosed code fence")
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NOT_RUN.match(lines[k].strip()) if k >= 0 else None
        if marker and not marker.group(1):
            raise ValueError(f"README.md:{k + 1}: a not-run marker needs a reason")
        blocks.append(Block(lang, start + 1, "\n".join(lines[start + 1:j]) + "\n",
                            marker.group(1) if marker else None))
        i = j + 1
    return blocks


def commands(block: Block) -> list[tuple[int, list[str]]]:
    """(line, argv) of the bot4 commands in a block: every command line of a shell block, the
    `$ ` prompt lines of any other; continuation lines joined, comments dropped."""
    out = []
    lines = block.code.splitlines()
    i = 0
    while i < len(lines):
        line_no, text = block.line + 1 + i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        stripped = text.strip()
        if stripped.startswith("$ "):
            stripped = stripped[2:]
        elif block.lang not in COMMAND_LANGS:
            continue
        argv = shlex.split(stripped, comments=True)
        if argv and argv[0] == "bot4":
            out.append((line_no, argv[1:]))
    return out


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python"]
COMMANDS = [(line, argv) for b in BLOCKS for line, argv in commands(b)]


def test_readme_has_examples():
    assert len(PYTHON) >= 4
    assert len(COMMANDS) >= 10
    assert {argv[0] for _, argv in COMMANDS} >= {"demo", "backtest", "replay", "train", "convert"}


@pytest.mark.parametrize("block", PYTHON, ids=[f"README.md:{b.line}" for b in PYTHON])
def test_python_example_runs(block: Block, tmp_path):
    if block.not_run is not None:
        pytest.skip(f"not-run (README.md:{block.line}): {block.not_run}")
    code = block.code
    if any(marker in code for marker in DATA_MARKERS):
        if not data_available():
            if REQUIRE_DATA:
                pytest.fail(f"BOT4_REQUIRE_DATA is set and README.md:{block.line} {missing_reason()}",
                            pytrace=False)
            pytest.skip(f"README.md:{block.line} {missing_reason()}")
        code = code.replace("../shared/data", str(DATA_DIR))
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{block.line}: still running after {TIMEOUT_S} s", pytrace=False)
    assert proc.returncode == 0, (f"README.md:{block.line}: the example failed (exit {proc.returncode}):\n"
                                  + proc.stderr[-3000:])


@pytest.mark.parametrize(("line", "argv"), COMMANDS, ids=[f"README.md:{line}-{argv[0]}" for line, argv in COMMANDS])
def test_cli_example_parses(line: int, argv: list[str]):
    from bot4.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:   # --help / --version exit 0; a usage error exits 2
            assert exc.code == 0, f"README.md:{line}: `bot4 {shlex.join(argv)}` does not parse: {err.getvalue()}"
            return
    assert callable(args.func)


def test_markers_and_commands_are_found():
    text = "\n".join([
        "intro", "", "<!-- not-run: needs a GPU -->", "", "```python", "print(1)", "```",
        "```python", "print(2)", "```",
        "```bash", "pip install .", "bot4 replay --data a.gz \\", "    --check-bbo   # the check", "```",
        "```text", "$ bot4 info --json", "bot4 demo [--data PATH]", "```",
    ])
    blocks = parse_blocks(text)
    assert [(b.lang, b.not_run) for b in blocks] == [("python", "needs a GPU"), ("python", None), ("bash", None),
                                                     ("text", None)]
    assert commands(blocks[2]) == [(13, ["replay", "--data", "a.gz", "--check-bbo"])]
    assert commands(blocks[3]) == [(17, ["info", "--json"])]
    with pytest.raises(ValueError, match="needs a reason"):
        parse_blocks("<!-- not-run: -->\n```python\nx\n```\n")
    with pytest.raises(ValueError, match="unclosed"):
        parse_blocks("```python\nx\n")


def test_a_wrong_option_is_caught():
    from bot4.cli import build_parser

    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["replay", "--no-such-option"])
    assert exc.value.code == 2
