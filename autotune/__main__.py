"""python -m autotune: the command line."""

from autotune.commands.cli import main

main()
