from study.cli import cli

cli()
