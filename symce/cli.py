"""The ``symce`` command line (also ``python -m symce``).

  symce list                 the kernels and the derivations
  symce show NAME            a derivation (closed form, assumptions) or a kernel (formula, slots)
  symce derive [--check]     verify every proof and (re)generate generated/, or compare with it
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "generated"


def _derive(args) -> int:
    from . import generate
    from .proof import ProofError
    try:
        if args.check:
            text = generate.diff(Path(args.out))
            if text:
                sys.stdout.write(text)
                print("generated/ is out of sync with symce + templates: "
                      "run `make derive` and commit.", file=sys.stderr)
                return 1
            print("generated/ is in sync with symce + templates")
            return 0
        files = generate.write(Path(args.out))
    except ProofError as err:
        print(f"symce: a derivation step does not hold: {err}", file=sys.stderr)
        return 2
    print(f"verified every derivation; wrote {len(files)} files under {args.out}")
    return 0


def _list(args) -> int:
    from .derive import results
    from .kernels import registry
    print("kernels:")
    for kern in registry().values():
        print(f"  {kern.name:34s} {kern.formula}")
    print("derivations:")
    for res in results().values():
        print(f"  {res.name:44s} {res.spec.title}")
    return 0


def _show(args) -> int:
    import sympy as sp

    from .derive import results
    from .kernels import registry
    name = args.name
    found = False
    if name in results():
        res = results()[name]
        print(f"{res.spec.title}  ({res.name})")
        print(f"  d/d{sp.sstr(res.spec.wrt)} of {sp.sstr(res.spec.definition)}")
        print(f"  closed form: {sp.sstr(res.closed)}")
        if res.assumptions:
            print(f"  without the assumption: {sp.sstr(res.general)}")
            for a in res.assumptions:
                print(f"  assumes: {a.text}")
        found = True
    if name in registry():  # a kernel may share its name with the derivation it evaluates
        kern = registry()[name]
        print(f"kernel {kern.name}: {kern.summary}")
        print(f"  formula: {kern.formula}")
        print(f"  family: {kern.family}; from derivation: {kern.derivation or '(definition)'}")
        for slot, expr in kern.slots.items():
            print(f"  slot {slot} = {sp.sstr(expr)}")
        if kern.options:
            print(f"  options: {', '.join(kern.options)}")
        found = True
    if found:
        return 0
    print(f"symce: no kernel or derivation named {name!r}; see `symce list`", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="symce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="verify every derivation and regenerate generated/")
    d.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: generated/)")
    d.add_argument("--check", action="store_true",
                   help="compare a fresh generation with the folder instead of writing")
    d.set_defaults(func=_derive)
    ls = sub.add_parser("list", help="list kernels and derivations")
    ls.set_defaults(func=_list)
    sh = sub.add_parser("show", help="show one kernel or derivation")
    sh.add_argument("name")
    sh.set_defaults(func=_show)
    args = parser.parse_args(argv)
    return args.func(args)
