"""`python -m openelb` runs the CLI (same as the `openelb` console script)."""

from openelb import cli

cli.main()
