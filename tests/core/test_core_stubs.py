"""python/bot4/_core/<sub>.pyi covers each native submodule: every public name (module
attributes, classes, and each class's public members) appears in the stub module of the same
name, nothing stubbed is missing from the module, and argument names follow pybind11's signature
lines, which mypy's stubtest (.ci/run) cannot read from builtins."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from bot4 import _core

STUBS = Path(__file__).resolve().parents[2] / "python" / "bot4" / "_core"
SUBMODULES = ("simd", "book", "sim", "features", "inference", "risk", "orders", "engine", "ingest")


def _stub_classes():
    """Stub module ASTs by submodule name (each has .body, like the class nodes inside it)."""
    return {p.stem: ast.parse(p.read_text()) for p in STUBS.glob("*.pyi") if p.stem != "__init__"}


def _names(cls_node):
    out = {}
    for n in cls_node.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[n.name] = n
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            out[n.target.id] = n
        elif isinstance(n, ast.ClassDef):
            out[n.name] = n
    return out


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


@pytest.mark.parametrize("sub", SUBMODULES)
def test_submodule_names_in_stub(sub):
    classes = _stub_classes()
    assert sub in classes, f"python/bot4/_core/ has no {sub}.pyi"
    stubbed = _names(classes[sub])
    mod = getattr(_core, sub)
    missing = sorted(_public(mod) - set(stubbed))
    assert not missing, f"_core.{sub} names missing from _core.pyi: {missing}"
    extra = sorted(set(stubbed) - _public(mod))
    assert not extra, f"_core.pyi stubs names _core.{sub} does not have: {extra}"
    for name in _public(mod):
        obj = getattr(mod, name)
        if not inspect.isclass(obj):
            continue
        members = _names(stubbed[name])
        public = {m for m in vars(obj) if not m.startswith("_")}
        assert not sorted(public - set(members)), f"_core.{sub}.{name} members missing from _core.pyi: {sorted(public - set(members))}"
        stubbed_public = {m for m in members if not m.startswith("_")}
        assert not sorted(stubbed_public - public), \
            f"_core.pyi stubs _core.{sub}.{name} members that do not exist: {sorted(stubbed_public - public)}"


@pytest.mark.parametrize("sub", SUBMODULES)
def test_stub_arguments_match_signatures(sub):
    """Argument names (in order) of every stubbed callable match pybind11's signature line."""
    mod = getattr(_core, sub)
    stubbed = _names(_stub_classes()[sub])

    def check(fn_node, obj, qual):
        doc = (getattr(obj, "__doc__", None) or "").split("\n")[0]
        if "(" not in doc:
            return
        # pybind11 names unnamed arguments arg0, arg1, ...: the stub declares them positional-only
        posonly = [a.arg for a in fn_node.args.posonlyargs if a.arg != "self"]
        args = [f"arg{i}" for i in range(len(posonly))] + \
            [a.arg for a in fn_node.args.args + fn_node.args.kwonlyargs if a.arg != "self"]
        inner = doc[doc.index("(") + 1:doc.rindex(") ->")] if ") ->" in doc else ""
        want = []
        depth = 0
        tok = ""
        for ch in inner + ",":
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            if ch == "," and depth == 0:
                name = tok.strip().split(":")[0].strip()
                if name and name not in ("self", "*", "/"):
                    want.append(name)
                tok = ""
            else:
                tok += ch
        assert args == want, f"{qual}: stub args {args} != module {want}"

    for name, node in stubbed.items():
        obj = getattr(mod, name)
        if isinstance(node, ast.FunctionDef):
            check(node, obj, f"{sub}.{name}")
        elif isinstance(node, ast.ClassDef):
            for m, mnode in _names(node).items():
                attr = vars(obj).get(m)
                if isinstance(mnode, ast.FunctionDef) and attr is not None and not isinstance(attr, property):
                    check(mnode, getattr(obj, m), f"{sub}.{name}.{m}")
