"""`python -m pipeline.cache CACHE.h5 ...`: a summary of each feature cache (the Makefile's and the docs').

The cache itself: schema `pipeline.schema`, writing `pipeline.writer`, reading `pipeline.reader`.
"""

from __future__ import annotations

import os
import sys

from .errors import EXIT_BAD_INPUT, PipelineError
from .reader import describe


USAGE = "usage: python -m pipeline.cache CACHE.h5 [CACHE.h5 ...]"


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.cache FILE...`: a summary of each cache; one `error:` line per bad file, exit 2."""
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        try:
            print(f"{USAGE}\n\nPrint a summary of each feature cache written by extract-features "
                  "(rows, classes, backbone, completeness, arrays).", flush=True)
        except BrokenPipeError:  # `... --help | head -1`: the reader left; not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    files = [a for a in args if a != "--"]
    unknown = [a for a in files if a.startswith("-")]
    if not files or unknown:
        problem = f"no such option: {unknown[0]}" if unknown else "give at least one cache file"
        print(f"{USAGE}\nerror: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rc = 0
    try:
        for p in files:
            try:
                print(describe(p), flush=True)
            except PipelineError as e:
                print(f"error: {e}", file=sys.stderr)
                rc = EXIT_BAD_INPUT
    except BrokenPipeError:  # `python -m pipeline.cache a.h5 | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
