"""The `hookshelf` command line (typer + rich): `shared.cli.main:app`."""
