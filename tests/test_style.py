"""The package's public functions say what they take and give: every module-level function, and
every method of a module-level class, whose name does not start with ``_`` has a docstring, a
return annotation and an annotation on each parameter (but ``self`` / ``cls``)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "symce"


def _misses(node: ast.AST) -> list:
    """[what is missing] of a public function, or [] (and [] for anything else)."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
        return []
    params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
    args = [a for a in params if a.arg not in ("self", "cls")]
    if node.args.vararg:
        args.append(node.args.vararg)
    if node.args.kwarg:
        args.append(node.args.kwarg)
    miss = []
    if not ast.get_docstring(node):
        miss.append("docstring")
    if node.returns is None:
        miss.append("return")
    miss += [a.arg for a in args if a.annotation is None]
    return miss


def test_public_functions_have_hints_and_docstrings():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for node in tree.body:
            nodes = [(node, "")]
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                nodes += [(f, node.name + ".") for f in node.body]
            for fn, prefix in nodes:
                miss = _misses(fn)
                if miss:
                    found.append(f"{rel}:{fn.lineno} {prefix}{fn.name}: {', '.join(miss)}")
    assert not found, "public functions without hints or a docstring:\n" + "\n".join(found)
