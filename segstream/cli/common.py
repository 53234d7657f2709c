"""What several command families share: the generated bank's flags, progress, ports, data paths."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def generator(args: argparse.Namespace):
    """The synthetic bank the flags describe (_bank_flags and the customers/months/seed flags)."""
    from segstream.producers.synthetic import GeneratorConfig

    return GeneratorConfig(
        customers=args.customers,
        months=args.months,
        seed=args.seed,
        seasonal=args.seasonal,
        change_share=args.change_share,
    )


def progress(args: argparse.Namespace):
    """Long jobs say what they are doing on stderr, unless asked not to."""
    return (lambda *_: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))


def bank_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--change-share",
        type=float,
        default=0.0,
        help="share of generated customers whose personality changes abruptly at a random month",
    )
    p.add_argument("--seasonal", action="store_true", help="December and summer spending that is not personality")


def port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def shared(rel: str) -> Path:
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        cand = base / ".." / "shared" / "data" / rel
        if cand.exists():
            return cand.resolve()
    raise SystemExit(f"cannot find ../shared/data/{rel}; pass --path")
