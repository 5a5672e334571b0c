"""The ``symce`` command line (``python -m symce``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _derive(args) -> int:
    from . import generate
    if args.check:
        text = generate.diff(Path(args.out))
        if text:
            sys.stdout.write(text)
            print("generated/ is out of sync with symce + templates: run `make derive` and commit.",
                  file=sys.stderr)
            return 1
        print("generated/ is in sync")
        return 0
    files = generate.write(Path(args.out))
    print(f"wrote {len(files)} files under {args.out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="symce", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="verify every derivation and regenerate generated/")
    d.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "generated"))
    d.add_argument("--check", action="store_true", help="compare instead of writing")
    d.set_defaults(func=_derive)
    args = parser.parse_args(argv)
    return args.func(args)
