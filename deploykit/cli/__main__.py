"""`python -m deploykit.cli`: the same as the `deploykit` console script."""

from deploykit.cli import main

main(prog_name="deploykit")
