"""symce.errors is the one catalogue of bad-input errors: the C header and symce_strerror, the
MATLAB identifiers, the NumPy exception classes and the table in docs/semantics.md all agree
with it, and no language reports an error the catalogue does not list."""

from __future__ import annotations

import re
from pathlib import Path

from symce import errors, options
from symce import kernels as kr
from symce.lang import c_backend

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"


def test_catalogue_is_consistent():
    keys = [e.key for e in errors.CATALOGUE]
    assert len(keys) == len(set(keys))
    coded = [e for e in errors.CATALOGUE if e.c is not None]
    assert len({e.c for e in coded}) == len({e.c_value for e in coded}) == len(coded)
    assert all(e.c_value < 0 and e.c_message for e in coded)
    assert len({e.c_message for e in coded}) == len(coded)
    for e in errors.CATALOGUE:
        assert e.python in (None, "ValueError", "TypeError"), e.key
        assert e.matlab is None or re.fullmatch(r"symce:[a-z][A-Za-z]*", e.matlab), e.key
        assert e.python or e.c or e.matlab, f"{e.key}: no language reports it"


def test_docs_table_is_the_catalogue():
    docs = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    assert errors.markdown_table() in docs


def test_c_header_has_every_code_and_only_those():
    header = (GENERATED / "c" / "symce.h").read_text(encoding="utf-8")
    source = (GENERATED / "c" / "symce.c").read_text(encoding="utf-8")
    assert c_backend.ERRORS == errors.c_codes()
    for name, value, message in errors.c_codes():
        assert re.search(rf"\b{name} = {value}\b", header), name
        assert f'"{message}"' in source, name
    declared = set(re.findall(r"\b(SYMCE_ERR_[A-Z_]+) = -\d+", header))
    assert declared == {e.c for e in errors.CATALOGUE if e.c is not None}


def test_matlab_identifiers_are_the_catalogue():
    used = set()
    for path in (GENERATED / "matlab").glob("*.m"):
        # error('symce:...', ...), or an identifier passed to a helper that raises it
        used |= set(re.findall(r"'(symce:[A-Za-z]+)'", path.read_text(encoding="utf-8")))
    listed = set(errors.matlab_ids().values())
    assert used == listed, f"used but not listed: {used - listed}; listed, unused: {listed - used}"
    for path in (ROOT / "templates" / "matlab").glob("*.jinja"):
        assert "'symce:" not in path.read_text(encoding="utf-8"), (
            f"{path.name}: an identifier typed in the template: take it from errors"
        )


def test_numpy_raises_only_catalogued_classes():
    module = (GENERATED / "numpy" / "symce_kernels.py").read_text(encoding="utf-8")
    raised = set(re.findall(r"raise (\w+)\(", module))
    assert raised <= set(errors.python_classes().values()), raised
    template = (ROOT / "templates" / "numpy" / "_helpers.py.jinja").read_text(encoding="utf-8")
    assert not re.search(r"raise (ValueError|TypeError)\(", template), (
        "a NumPy error class typed in the template: take it from errors (symce.errors)"
    )
    keys = set(re.findall(r"raise \{\{ errors\.(\w+) \}\}", template))
    assert keys and keys <= set(errors.python_classes())


def test_every_kernel_option_has_a_record():
    """symce.options holds each option once: every kernel's options have a record, with words for
    the kernel's family in both documentations and a catalogued error for its validation."""
    for kern in kr.registry().values():
        fam = options.family(kern.family)
        for opt in options.records(kern):
            name = opt.name
            assert fam in opt.doc and fam in opt.matlab_doc, (kern.name, name)
            assert opt.error in errors.BY_KEY, (name, opt.error)
