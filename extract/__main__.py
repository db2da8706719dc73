"""`python -m extract ...` is `extract-features ...` (the launchers start shards this way)."""

from .cli import main

main()
