"""Command line: build the book, or re-execute one chapter with new parameters.

    python -m phase2 book --profile default
    python -m phase2 chapter quality_vs_memory -p dataset scifact -p model minilm-l6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phase2 import pipeline
from phase2.errors import Phase2Error


def _literal(text: str):
    """papermill's ``-p`` typing: int, then float, then the string itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    profiles = pipeline.profile_names()

    book = sub.add_parser("book", help="execute every chapter on a profile, then build the HTML book in _build/html")
    book.add_argument("--profile", default="default", choices=profiles, help="parameter set (chapters/profiles/)")
    book.add_argument("--force", action="store_true", help="re-execute chapters even when up to date")

    chapter = sub.add_parser("chapter", help="execute one chapter notebook with a profile and overrides")
    chapter.add_argument("name", help="chapter file name without .ipynb, e.g. quality_vs_memory")
    chapter.add_argument("--profile", default="smoke", choices=profiles, help="base parameter set")
    chapter.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                         help="override one parameter (repeatable); see --list")
    chapter.add_argument("--output", type=Path, help="executed notebook path (default: _build/executed/...)")
    chapter.add_argument("--list", action="store_true", help="list the chapter's parameters and exit")

    args = parser.parse_args(argv)
    try:
        if args.command == "book":
            pipeline.build_book(args.profile, force=args.force)
        else:
            run_one_chapter(args)
    except Phase2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_one_chapter(args: argparse.Namespace) -> None:
    notebooks = {nb.stem: nb for nb in pipeline.chapter_notebooks()}
    if args.name not in notebooks:
        raise pipeline.ParameterError(f"unknown chapter {args.name!r}; chapters: {', '.join(notebooks)}")
    notebook = notebooks[args.name]
    if args.list:
        for name, info in pipeline.declared_parameters(notebook).items():
            print(f"{name}: {info['inferred_type_name']} = {info['default']}  # {info['help']}")
        return
    overrides = {name: _literal(value) for name, value in args.parameter}
    parameters = pipeline.chapter_parameters(notebook, args.profile, overrides)
    output = args.output or pipeline.executed_dir(args.profile) / "custom" / notebook.name
    pipeline.execute_chapter(notebook, parameters, output, force=True)
    print(f"executed: {output}")


if __name__ == "__main__":
    sys.exit(main())
