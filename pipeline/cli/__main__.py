"""`python -m pipeline.cli ...` = `docket ...`."""

from pipeline.cli.root import main

main()
