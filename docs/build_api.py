"""Regenerate the Python API reference in docs/api/ from the docstrings.

    python docs/build_api.py                # rewrite docs/api/ (one Markdown page per module)
    python docs/build_api.py --check        # exit 1 if docs/api/ no longer matches the code
    python docs/build_api.py --html DIR     # also pdoc's browsable HTML site in DIR (not committed)

pdoc's documentation model decides what is public (``__all__`` where a module has one, otherwise
the names without a leading underscore that the module defines or re-exports from its own
submodules) and reads the docstrings, including ``#:`` comments on variables. The Markdown is
written here rather than by pdoc's HTML templates so that the committed pages carry no generator
version or styling and a diff shows only what changed in the API. Signatures come from
``inspect.signature`` without evaluating string annotations, so they read as written in the source
and do not change with the Python version.

Command-line modules (``bot4.cli``, ``bot4.*.cli``, ``*_cli``) are the shell around the library and
are documented by ``bot4 <command> --help``; private modules (a leading underscore, such as the
compiled ``bot4._core``) are not pages, but what a public module re-exports from them is listed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import importlib
import inspect
import io
import pkgutil
import re
import sys
import tempfile
import textwrap
import tokenize
from pathlib import Path

import pdoc
import pdoc.doc

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api"
PACKAGE = "bot4"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SIMPLE = (bool, int, float, str, bytes, type(None))


def is_cli_module(name: str) -> bool:
    """True for the command-line layer (documented by ``bot4 <command> --help``, not here)."""
    last = name.rsplit(".", 1)[-1]
    return last == "cli" or last.endswith("_cli")


def public_modules() -> list[str]:
    """Names of the modules that get a page: every bot4 module without a private component,
    CLI modules excepted, sorted."""
    package = importlib.import_module(PACKAGE)
    names = [PACKAGE] + [m.name for m in pkgutil.walk_packages(package.__path__, PACKAGE + ".")]
    return sorted(n for n in names
                  if not any(part.startswith("_") for part in n.split(".")) and not is_cli_module(n))


def cli_modules() -> list[str]:
    """The command-line modules left out of the reference (listed on the index page)."""
    package = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, PACKAGE + ".")
                  if is_cli_module(m.name) and not any(p.startswith("_") for p in m.name.split(".")))


def own_docstring(obj) -> str:
    """The object's own docstring ('' if none): not inherited, and not the one dataclasses
    generate from the fields (``Name(a: int, ...)``), which documents nothing."""
    if isinstance(obj, type):
        doc = obj.__dict__.get("__doc__")
        if dataclasses.is_dataclass(obj) and doc and doc.startswith(obj.__name__ + "("):
            return ""
    elif isinstance(obj, (staticmethod, classmethod)):
        doc = obj.__func__.__doc__
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def _defined_here(member: pdoc.doc.Doc, module: str) -> bool:
    return member.taken_from[0] == module


def public_members(mod: pdoc.doc.Module) -> list[pdoc.doc.Doc]:
    """The module's public members in source order (pdoc's rules, leading underscore dropped)."""
    return [m for m in mod.members.values() if not m.name.startswith("_")]


def class_members(cls: pdoc.doc.Class) -> list[pdoc.doc.Doc]:
    """A class's own public methods and attributes (inherited ones are on the base's page)."""
    return [m for m in cls.own_members if not m.name.startswith("_")]


class _Source:
    """An annotation shown as written (inspect would quote a string annotation)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def signature(obj, *, drop_first: bool = False) -> str:
    """``(a: int, b: str = 'x') -> T`` as written in the source (string annotations not evaluated)."""
    try:
        sig = inspect.signature(obj, eval_str=False)
    except (TypeError, ValueError):
        return "(...)"
    params = list(sig.parameters.values())[1 if drop_first and sig.parameters else 0:]
    params = [p.replace(annotation=_Source(p.annotation)) if isinstance(p.annotation, str) else p for p in params]
    ret = sig.return_annotation
    sig = sig.replace(parameters=params, return_annotation=_Source(ret) if isinstance(ret, str) else ret)
    text = str(sig)
    if len(text) > 100 and params:  # one parameter a line, separators as inspect places them
        parts, pos_only, kw_sep = [], False, True
        for p in params:
            if p.kind is p.POSITIONAL_ONLY:
                pos_only = True
            elif pos_only:
                parts.append("/")
                pos_only = False
            if p.kind is p.VAR_POSITIONAL:
                kw_sep = False
            elif p.kind is p.KEYWORD_ONLY and kw_sep:
                parts.append("*")
                kw_sep = False
            parts.append(str(p))
        if pos_only:
            parts.append("/")
        text = "(\n" + "".join(f"    {part},\n" for part in parts) + ")"
        if sig.return_annotation is not inspect.Signature.empty:
            text += " -> " + inspect.formatannotation(sig.return_annotation)
    return _ADDRESS.sub("", text)


def comment_docs(obj) -> dict[str, str]:
    """Comments that document assignments in a module or class body, by assigned name: ``#:``
    lines above (the Sphinx convention) or else the comment closing the assignment's last line
    (``price: int  # ticks``), the form the dataclasses and Structs here use for field units."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    trailing: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                trailing[tok.start[0]] = tok.string[1:].strip()
    except (tokenize.TokenError, SyntaxError):
        return {}
    body = tree.body[0].body if isinstance(obj, type) and tree.body and isinstance(tree.body[0], ast.ClassDef) \
        else tree.body
    src = source.splitlines()
    docs = {}
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            continue
        above: list[str] = []
        i = node.lineno - 2
        while i >= 0 and src[i].strip().startswith("#:"):
            above.insert(0, src[i].strip()[2:].strip())
            i -= 1
        end = node.end_lineno or node.lineno
        after = trailing.get(end, "")
        code = src[end - 1].split("#", 1)[0].strip()
        if not code or after.startswith(("type:", "noqa", ":")):
            after = ""  # a comment line of its own, or a tool's pragma
        text = " ".join(above) or after
        if text:
            for n in names:
                docs[n] = text
    return docs


def _value_text(value) -> str | None:
    """A short literal for a constant, or None when the value is not a plain literal (a long
    table, an object, anything whose text could depend on the machine)."""
    if isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value):
        text = repr(value)
    elif isinstance(value, frozenset) and all(isinstance(v, _SIMPLE) for v in value):
        # sorted: a set's order follows string hashing, which changes with every process
        text = "frozenset({" + ", ".join(sorted(repr(v) for v in value)) + "})"
    elif isinstance(value, _SIMPLE) and not (isinstance(value, str) and ("/" in value or "\\" in value)):
        text = repr(value)
    else:
        return None
    return text if len(text) <= 120 else None


def _docstring_block(text: str) -> list[str]:
    return [text, ""] if text else ["*(no docstring)*", ""]


def _function_lines(name: str, fn: pdoc.doc.Function, level: str, is_method: bool) -> list[str]:
    kind = ("classmethod" if fn.is_classmethod else "staticmethod" if fn.is_staticmethod
            else "method" if is_method else "function")
    raw = fn.obj
    target = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
    # self/cls is not part of the call; a bound classmethod has lost it already
    drop = is_method and not fn.is_staticmethod and not inspect.ismethod(target)
    return [f"{level} `{name}` *{kind}*", "", "```python", f"{name}{signature(target, drop_first=drop)}", "```", "",
            *_docstring_block(own_docstring(raw))]


def _variable_lines(name: str, var: pdoc.doc.Variable, level: str, comments: dict[str, str]) -> list[str]:
    annotation = var.annotation_str.lstrip(": ").strip() if var.annotation_str else ""
    value = _value_text(var.default_value) if var.default_value is not pdoc.doc.empty else None
    text = name + (f": {annotation}" if annotation else "") + (f" = {value}" if value is not None else "")
    doc = inspect.cleandoc(var.docstring) if var.docstring.strip() else comments.get(var.name, "")
    return [f"{level} `{name}` *{'property' if isinstance(var.obj, property) else 'attribute'}*", "",
            "```python", _ADDRESS.sub("", text), "```", "", *([doc, ""] if doc else [])]


def _class_lines(name: str, cls: pdoc.doc.Class) -> list[str]:
    bases = [b.__qualname__ if b.__module__ == "builtins" else f"{b.__module__}.{b.__qualname__}"
             for b in cls.obj.__bases__ if b is not object]
    init = signature(cls.obj)
    lines = [f"## `{name}` *class*", "", "```python",
             f"class {name}({', '.join(bases)})" if bases else f"class {name}",
             f"{name}{init}", "```", "", *_docstring_block(own_docstring(cls.obj))]
    comments = comment_docs(cls.obj)
    for member in class_members(cls):
        qual = f"{name}.{member.name}"
        if isinstance(member, pdoc.doc.Function):
            lines += _function_lines(qual, member, "###", is_method=True)
        elif isinstance(member, pdoc.doc.Variable):
            lines += _variable_lines(qual, member, "###", comments)
    return lines


def _summary(text: str) -> str:
    first = text.strip().split("\n\n", 1)[0].replace("\n", " ")
    return first if len(first) <= 160 else first[:157].rstrip() + "..."


def render_module(name: str) -> str:
    """The Markdown page of one module."""
    mod = pdoc.doc.Module.from_name(name)
    members = public_members(mod)
    here = [m for m in members if _defined_here(m, name)]
    elsewhere = [m for m in members if not _defined_here(m, name)]
    lines = [f"# `{name}`", "", "<!-- generated by docs/build_api.py from the docstrings; do not edit -->", "",
             *_docstring_block(own_docstring(mod.obj))]
    submodules = [s.modulename for s in mod.submodules if s.modulename in set(public_modules())]
    if submodules:
        lines += ["Submodules: " + ", ".join(f"[`{s}`]({s}.md)" for s in submodules), ""]
    if elsewhere:
        lines += ["Re-exported here:", ""]
        for m in elsewhere:
            origin = m.taken_from[0]
            where = f"[`{origin}`]({origin}.md)" if origin in set(public_modules()) else f"`{origin}`"
            lines.append(f"- `{m.name}` — `{'.'.join(m.taken_from)}` (see {where})")
        lines.append("")
    comments = comment_docs(mod.obj)
    if here:
        lines += ["| name | kind | summary |", "|---|---|---|"]
        for m in here:
            kind = {pdoc.doc.Class: "class", pdoc.doc.Function: "function"}.get(type(m), "constant")
            doc = own_docstring(m.obj) if kind != "constant" else (m.docstring or comments.get(m.name, ""))
            lines.append(f"| [`{m.name}`](#{m.name.lower()}) | {kind} | {_summary(doc).replace('|', '&#124;')} |")
        lines.append("")
    for m in here:
        if isinstance(m, pdoc.doc.Class):
            lines += _class_lines(m.name, m)
        elif isinstance(m, pdoc.doc.Function):
            lines += _function_lines(m.name, m, "##", is_method=False)
        elif isinstance(m, pdoc.doc.Variable):
            lines += _variable_lines(m.name, m, "##", comments)
    return "\n".join(lines).rstrip() + "\n"


def render_index(modules: list[str]) -> str:
    """docs/api/README.md: every page with the first line of its module docstring."""
    lines = ["# bot4 Python API reference", "",
             "<!-- generated by docs/build_api.py from the docstrings; do not edit -->", "",
             "One page per public module, generated from the docstrings by `python docs/build_api.py` "
             "(pdoc's documentation model; `tests/docs/test_api_reference.py` fails when a page is stale "
             "or a public function or class has no docstring). Units, shapes and dtypes are stated in "
             "the docstrings; the event and record layouts are in [../data-model.md](../data-model.md), "
             "the feature columns in [../features.md](../features.md).", "",
             "| module | summary |", "|---|---|"]
    for name in modules:
        doc = own_docstring(importlib.import_module(name))
        lines.append(f"| [`{name}`]({name}.md) | {_summary(doc).replace('|', '&#124;')} |")
    lines += ["", "Command-line modules (documented by `bot4 <command> --help`): "
              + ", ".join(f"`{m}`" for m in cli_modules()) + "."]
    return "\n".join(lines) + "\n"


def build(out: Path) -> list[Path]:
    """Write every page and the index into `out` (created; stale pages removed). Returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    modules = public_modules()
    pages = {f"{name}.md": render_module(name) for name in modules}
    pages["README.md"] = render_index(modules)
    for old in out.glob("*.md"):
        if old.name not in pages:
            old.unlink()
    written = []
    for fname, text in pages.items():
        path = out / fname
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def undocumented(modules: list[str] | None = None) -> list[str]:
    """Public modules, classes, functions and methods without a docstring of their own
    (`modules`: default every page's module)."""
    missing = []
    for name in public_modules() if modules is None else modules:
        mod = pdoc.doc.Module.from_name(name)
        if not own_docstring(mod.obj):
            missing.append(f"{name} (module)")
        for m in public_members(mod):
            if not _defined_here(m, name) or not isinstance(m, (pdoc.doc.Class, pdoc.doc.Function)):
                continue
            if not own_docstring(m.obj):
                missing.append(f"{name}.{m.name}")
            if isinstance(m, pdoc.doc.Class):
                missing += [f"{name}.{m.name}.{f.name}" for f in class_members(m)
                            if isinstance(f, pdoc.doc.Function) and not own_docstring(f.obj)]
    return missing


def compare(committed: Path, fresh: Path) -> list[str]:
    """Differences between the pages in `committed` and those in `fresh`: one unified diff (or
    note) per page that differs, is missing, or is no longer made."""
    problems = []
    new = {p.name: p.read_text(encoding="utf-8") for p in fresh.glob("*.md")}
    old = {p.name: p.read_text(encoding="utf-8") for p in committed.glob("*.md")}
    for fname in sorted(set(new) | set(old)):
        if fname not in old:
            problems.append(f"{fname}: missing from {committed}")
        elif fname not in new:
            problems.append(f"{fname}: no such public module any more")
        elif old[fname] != new[fname]:
            diff = difflib.unified_diff(old[fname].splitlines(), new[fname].splitlines(),
                                        f"committed/{fname}", f"docstrings/{fname}", lineterm="", n=1)
            problems.append("\n".join(list(diff)[:40]))
    return problems


def stale_pages(committed: Path = OUT) -> list[str]:
    """compare(committed, a fresh build in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="bot4-api-") as tmp:
        build(Path(tmp))
        return compare(committed, Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare docs/api/ with the code, write nothing")
    parser.add_argument("--html", type=Path, metavar="DIR", help="also write pdoc's HTML site into DIR")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_pages()
        missing = undocumented()
        for p in problems:
            print(p)
        if missing:
            print("no docstring: " + ", ".join(missing))
        if problems:
            print(f"docs/api is stale ({len(problems)} pages): run `python docs/build_api.py`")
        return 1 if problems or missing else 0
    written = build(OUT)
    print(f"wrote {len(written)} pages to {OUT.relative_to(ROOT)}")
    if args.html:
        pdoc.pdoc(*public_modules(), output_directory=args.html)
        print(f"wrote pdoc HTML to {args.html}")
    missing = undocumented()
    if missing:
        print(f"{len(missing)} public names have no docstring: " + ", ".join(missing), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
