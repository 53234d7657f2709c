"""The ``segstream`` command: one entry point per job, in families (run, data, model, admin);
each subcommand's flags live beside its handler. Only this module turns errors into exit codes."""

from __future__ import annotations

import argparse
import logging
import sys

from segstream.config import get_settings
from segstream.errors import SegstreamError

from . import admin, data, model, run


def build_parser() -> argparse.ArgumentParser:
    from segstream import __version__

    p = argparse.ArgumentParser(
        prog="segstream", description="Streaming micro-segmentation of bank customers by spending personality."
    )
    p.add_argument("--version", action="version", version=f"segstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for family in (run, data, model, admin):
        family.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except SegstreamError as err:
        raise SystemExit(f"segstream {args.command}: {err}") from None
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        raise SystemExit(
            f"segstream {args.command} needs the {extra!r} extra ({err.name} is not installed): "
            f"pip install 'segstream[{extra}]'"
        ) from None


# optional dependencies (pyproject.toml) by the module a job imports first
EXTRAS = {
    "sklearn": "research",
    "matplotlib": "research",
    "river": "research",
    "fastapi": "api",
    "uvicorn": "api",
    "fastapi_offline": "api",
}


if __name__ == "__main__":
    sys.exit(main())
