"""The package's layout shows its design: imports run one way (no module imports itself through
others), emitters never reach the test reference, and no private name crosses a module."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "symce"


def _modules() -> dict:
    """{dotted name: path} of every module in symce/."""
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


@cache
def _imports(name: str) -> list:
    """[(module imported, names taken from it)] for every import in module ``name``, at any depth
    (a lazy import inside a function is a dependency too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:  # `from . import x` imports the module x
                sub = f"{mod}.{a.name}"
                found.append((sub, ()) if sub in MODULES else (mod, (a.name,)))
    return found


def _graph() -> dict:
    return {
        name: sorted({mod for mod, _ in _imports(name) if mod in MODULES and mod != name})
        for name in MODULES
    }


def test_imports_have_no_cycle():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_emitters_do_not_use_the_reference_or_the_generate_step():
    """An emitter prints from the kernel description; the mpmath reference is the tests' oracle,
    and symce.generate is the stage that calls the emitters (symce.lang.registry)."""
    graph = _graph()
    reach = {}

    def closure(node):
        if node not in reach:
            reach[node] = set()
            for nxt in graph[node]:
                reach[node] |= {nxt} | closure(nxt)
        return reach[node]

    for name in MODULES:
        if name.startswith("symce.lang.") and name != "symce.lang.registry":
            bad = closure(name) & {"symce.reference", "symce.generate", "symce.lang.registry"}
            assert not bad, f"{name} reaches {sorted(bad)}"


def test_no_private_name_crosses_a_module():
    crossing = []
    for name, path in MODULES.items():
        for mod, names in _imports(name):
            if mod in MODULES:
                crossing += [f"{name}: from {mod} import {n}" for n in names if n.startswith("_")]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}  # local name -> symce module, for `from symce import x as y` / `import`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                for a in node.names:
                    for mod, _ in _imports(name):
                        if mod.rsplit(".", 1)[-1] == a.name and mod in MODULES:
                            aliases[a.asname or a.name] = mod
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                crossing.append(f"{name}: {node.value.id}.{node.attr}")
    assert not crossing, "private names used across modules:\n" + "\n".join(crossing)


def test_module_docstrings_name_their_stage():
    """One numbering (symce/__init__.py): every module's docstring opens with its stage, 1 to 6,
    or says it is outside the pipeline."""
    outside = {
        "symce",
        "symce.__main__",
        "symce.cli",
        "symce.reference",
        "symce.ulp",
        "symce.check",
    }
    package_doc = ast.get_docstring(ast.parse(MODULES["symce"].read_text(encoding="utf-8")))
    stages = dict(re.findall(r"^(\d)\. (\w+)", package_doc, re.M))
    assert sorted(stages) == [str(n) for n in range(1, 7)], stages
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if name in outside or name.startswith("symce.library"):  # declarations, as a user's
            continue
        m = re.match(r"Stage (\d) — (\w+)", doc)
        assert m, f"{name}: the docstring does not open with its stage"
        assert stages[m.group(1)] == m.group(2), (
            f"{name}: stage {m.group(1)} is {stages[m.group(1)]}"
        )
        parents = [name.rsplit(".", n)[0] for n in range(name.count("."))]  # itself, its package
        assert any(f":mod:`{p}`" in package_doc for p in parents), f"{name} is not listed"
