"""The ``segstream`` command: one entry point per job."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from segstream.config import get_settings


def _demo(args: argparse.Namespace) -> int:
    from segstream.demo import run_demo

    summary = run_demo(args.customers, args.months, args.seed, get_settings())
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(map(len, summary))
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from models.training import TrainConfig, train
    from producers.synthetic import GeneratorConfig, SyntheticBank

    bank = SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=args.seed))
    spend, active = bank.monthly_spend()
    cfg = TrainConfig(hidden_size=args.hidden, n_segments=args.segments, seed=args.seed)
    log = print if args.verbose else (lambda *_: None)
    artefact = train(spend, active, cfg, source={"generator_customers": args.customers, "generator_months": args.months}, log=log)
    artefact.save(args.out)
    print(json.dumps({"model_version": artefact.version, "path": str(args.out), **artefact.trained_on}))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from stream_app.app import app

    sys.argv = ["segstream worker", "worker", "-l", args.loglevel]
    app.main()
    return 0


def _produce(args: argparse.Namespace) -> int:
    from producers import sources
    from producers.kafka_producer import publish

    settings = get_settings()
    if args.source == "synthetic":
        from producers.synthetic import GeneratorConfig, SyntheticBank

        events = SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=args.seed)).events()
    elif args.source == "file":
        events = sources.from_file(args.path)
    elif args.source == "cdnow":
        events = sources.cdnow(args.path or _shared("cdnow/CDNOW_master.txt"))
    else:
        events = sources.berka_orders(args.path or _shared("berka"))
    n = publish(events, settings, rate=args.rate, limit=args.limit)
    print(json.dumps({"produced": n, "topic": settings.topic_transactions}))
    return 0


def _shared(rel: str) -> Path:
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        cand = base / ".." / "shared" / "data" / rel
        if cand.exists():
            return cand.resolve()
    raise SystemExit(f"cannot find ../shared/data/{rel}; pass --path")


def _watch(args: argparse.Namespace) -> int:
    from stream_app.watch import changes, describe

    for ch in changes(get_settings(), from_beginning=args.from_beginning, idle_timeout_s=args.idle_timeout):
        print(json.dumps(ch) if args.json else describe(ch), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segstream", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run generator -> windows -> engine in-process and score it against ground truth")
    d.add_argument("--customers", type=int, default=2000)
    d.add_argument("--months", type=int, default=24)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    d.set_defaults(func=_demo)

    from models.artefact import DEFAULT_PATH

    t = sub.add_parser("train", help="train the recurrent predictor on generated customers and save an artefact")
    t.add_argument("--customers", type=int, default=4000)
    t.add_argument("--months", type=int, default=24)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--hidden", type=int, default=8)
    t.add_argument("--segments", type=int, default=20)
    t.add_argument("--out", type=Path, default=DEFAULT_PATH)
    t.add_argument("-v", "--verbose", action="store_true")
    t.set_defaults(func=_train)

    w = sub.add_parser("worker", help="run the Faust worker (Kafka -> engine -> Kafka, state in Redis)")
    w.add_argument("-l", "--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    w.set_defaults(func=_worker)

    pr = sub.add_parser("produce", help="publish events to the transactions topic with kafka-python")
    pr.add_argument("source", choices=["synthetic", "file", "cdnow", "berka"])
    pr.add_argument("--path", type=Path, help="event file (CSV/Parquet) or data set location")
    pr.add_argument("--customers", type=int, default=1000)
    pr.add_argument("--months", type=int, default=12)
    pr.add_argument("--seed", type=int, default=7)
    pr.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    pr.add_argument("--limit", type=int)
    pr.set_defaults(func=_produce)

    wa = sub.add_parser("watch", help="tail the segment-changes topic")
    wa.add_argument("--from-beginning", action="store_true")
    wa.add_argument("--idle-timeout", type=float, help="exit after this many seconds without a message")
    wa.add_argument("--json", action="store_true")
    wa.set_defaults(func=_watch)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
