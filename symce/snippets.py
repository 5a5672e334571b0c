"""Stage 6 — emission (continued): one kernel as a self-contained snippet to paste (`symce emit`).

The generated files hold every kernel and every helper.  A snippet is one kernel with exactly the
definitions it needs, taken from what the emitters render (so a snippet is the generated code,
never a second version of it):

* **NumPy** — the module's imports, the kernel's function and the module-level names it reaches,
  found by walking the module's syntax tree (:mod:`ast`), in the module's order.
* **C** — symce.h and symce.c cut into their top-level items (a function, a macro or a
  preprocessor block, an enum, a typedef), each with the names it defines and the names it uses;
  the snippet is the closure of the kernel's functions (its label and probability-target
  variants for the cross-entropies) over that relation, in the files' order, after the standard
  headers.  The items the compiler needs for every function (the pragmas that keep the
  floating-point semantics) come along.  The snippet compiles alone with -Wall -Wextra -Werror:
  an unused helper would be a warning.
* **MATLAB** — each generated file is already one kernel with the local functions it calls.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache

from . import definitions

LANGUAGES = ("numpy", "c", "matlab")
DTYPES = {"float32": "f32", "float64": "f64"}

_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


@cache
def _files(lang: str) -> dict:
    from .generate import render_all

    return render_all([lang])


definitions.on_change(_files.cache_clear)  # a new definition: render again


def snippet(lang: str, kernel: str, dtype: str = "float64") -> str:
    """The pasteable source of ``kernel`` in ``lang`` (``dtype`` chooses C's function)."""
    from .kernels import registry

    if lang not in LANGUAGES:
        raise ValueError(f"lang: expected one of {', '.join(LANGUAGES)}, got {lang!r}")
    if kernel not in registry():
        raise ValueError(f"kernel: expected one of {', '.join(registry())}, got {kernel!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if lang == "numpy":
        return _numpy(kernel)
    if lang == "matlab":
        return _files("matlab")[f"matlab/symce_{kernel}.m"]
    return _c(kernel, DTYPES[dtype])


# ---- NumPy -----------------------------------------------------------------------------------
def _numpy(kernel: str) -> str:
    text = _files("numpy")["numpy/symce_kernels.py"]
    tree = ast.parse(text)
    lines = text.splitlines()
    defined = {}  # name -> index of the top-level statement that binds it
    for index, node in enumerate(tree.body):
        for name in _binds(node):
            defined.setdefault(name, index)
    if kernel not in defined:
        raise ValueError(f"kernel: {kernel} is not in the NumPy module")
    keep, todo = set(), [defined[kernel]]
    while todo:
        index = todo.pop()
        if index in keep:
            continue
        keep.add(index)
        used = {n.id for n in ast.walk(tree.body[index]) if isinstance(n, ast.Name)}
        used |= {
            n.value.id
            for n in ast.walk(tree.body[index])
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
        }
        todo += [defined[name] for name in used if name in defined]
    out = [
        f'"""symce: {kernel}, one NumPy function with the helpers it needs (`symce emit '
        f'--lang numpy --kernel {kernel}`)."""',
        "",
    ]
    for index, node in enumerate(tree.body):
        if index in keep and not _is_docstring(node):
            first = node.lineno - 1 - len(_comments_above(lines, node.lineno - 1))
            if hasattr(node, "decorator_list") and node.decorator_list:
                first = min(first, node.decorator_list[0].lineno - 1)
            out += lines[first : node.end_lineno]
            out.append("" if isinstance(node, (ast.Import, ast.ImportFrom)) else "\n")
    return "\n".join(out).rstrip() + "\n"


def _binds(node) -> list:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)


def _comments_above(lines: list, index: int) -> list:
    out = []
    while index > 0 and lines[index - 1].lstrip().startswith("#"):
        index -= 1
        out.append(lines[index])
    return out


# ---- C ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Item:
    text: str
    defines: frozenset
    uses: frozenset
    always: bool  # needed by every function (a pragma on the floating-point semantics)


def _items(text: str) -> list:
    """The top-level items of a C file, each with its comment, split at blank lines outside
    braces and preprocessor conditionals."""
    items, chunk, depth, nest = [], [], 0, 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped and depth == 0 and nest == 0:
            if chunk:
                items.append("\n".join(chunk))
                chunk = []
            continue
        chunk.append(line)
        if stripped.startswith("#if"):
            nest += 1
        elif stripped.startswith("#endif"):
            nest -= 1
        code = re.sub(r"/\*.*?\*/|//.*$", "", line)
        if not stripped.startswith("#"):
            depth += code.count("{") - code.count("}")
    if chunk:
        items.append("\n".join(chunk))
    return [_describe(t) for t in items]


def _code(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


def _describe(text: str) -> _Item:
    code = _code(text)
    defines = set(re.findall(r"#\s*define\s+([A-Za-z_]\w*)", code))
    body = code
    match = re.search(
        r"^(?:[A-Za-z_][\w\s\*]*?)\b([A-Za-z_]\w*)\s*\([^;{]*\)\s*\{", code, re.M | re.S
    )
    if match and not code.lstrip().startswith("#"):
        defines.add(match.group(1))
    typedef = re.search(r"typedef\s+enum\s+(\w+)?\s*\{(.*?)\}\s*(\w+)\s*;", code, re.S)
    if typedef:
        defines |= {typedef.group(3)} | set(
            re.findall(r"\b([A-Z_][A-Z0-9_]*)\s*[=,}]", typedef.group(2) + "}")
        )
        if typedef.group(1):
            defines.add(typedef.group(1))
    enum = re.match(r"\s*enum\s*\{(.*?)\}\s*;", code, re.S)
    if enum:
        defines |= set(re.findall(r"\b([A-Z_][A-Z0-9_]*)\s*=", enum.group(1)))
    uses = set(_IDENT.findall(body)) - defines
    always = "#pragma" in code and not defines
    return _Item(text, frozenset(defines), frozenset(uses), always)


def _c(kernel: str, sfx: str) -> str:
    files = _files("c")
    linkage = r'#ifdef __cplusplus\n(extern "C" \{|\})\n#endif\n'  # C++ only, and unbalanced
    header_text = re.sub(linkage, "", files["c/symce.h"])
    guard = header_text.rindex("#endif")  # the include guard's, the file's last line
    header_text = header_text[:guard].replace("#ifndef SYMCE_H\n#define SYMCE_H\n", "", 1)
    header = [i for i in _items(header_text) if _kept_from_header(i)]
    source = [i for i in _items(files["c/symce.c"]) if '#include "symce.h"' not in i.text]
    items = header + source
    owner = {}
    for index, item in enumerate(items):
        for name in item.defines:
            if not re.match(r"symce_\w+_f(32|64)$", name) or index >= len(header):
                owner[name] = index  # a kernel's definition, not its prototype
    roots = [f"symce_{kernel}_{sfx}", f"symce_{kernel}_soft_{sfx}"]
    if roots[0] not in owner:
        raise ValueError(f"kernel: symce.c has no function {roots[0]}")
    keep = {index for index, item in enumerate(items) if item.always}
    todo = [owner[r] for r in roots if r in owner]
    while todo:
        index = todo.pop()
        if index in keep and index not in [owner[r] for r in roots if r in owner]:
            continue
        if index in keep and items[index].always:
            continue
        keep.add(index)
        todo += [owner[n] for n in items[index].uses if n in owner and owner[n] not in keep]
    head = (
        f"/* symce: {kernel} ({'float' if sfx == 'f32' else 'double'}), one C function with the "
        f"helpers it needs (`symce emit --lang c --kernel {kernel} --dtype "
        f"{'float32' if sfx == 'f32' else 'float64'}`).\n"
        " * C99; link with -lm.  Returns SYMCE_OK (0) or an error code (symce_status). */"
    )
    body = [items[i].text for i in sorted(keep)]
    used = set(_IDENT.findall(_code("\n".join(body))))
    headers = sorted(
        set(re.findall(r"#include <([^>]+)>", files["c/symce.h"] + files["c/symce.c"]))
    )
    includes = [f"#include <{h}>" for h in headers if used & _DECLARES.get(h, used)]
    return "\n\n".join([head, "\n".join(includes), *body]) + "\n"


# what symce's C takes from each standard header (a header none of whose names a snippet uses is
# left out; a header not listed here is always kept)
_DECLARES = {
    "stddef.h": {"size_t", "NULL"},
    "stdint.h": {"int64_t", "uint64_t", "uint32_t", "int32_t", "SIZE_MAX", "INT64_MAX"},
    "stdlib.h": {"malloc", "free"},
    "string.h": {"memcpy", "memset", "memmove"},
}


def _kept_from_header(item: _Item) -> bool:
    """symce.h's items a snippet may need: its macros and types, not its guard, its C++ linkage
    or its prototypes."""
    code = _code(item.text).strip()
    if code.startswith(("#ifndef SYMCE_H", "#define SYMCE_H", "#endif", "#include")):
        return False
    return bool(code) and not re.match(r"(int|const char)\s", code)
