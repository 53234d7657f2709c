"""Running segstream: the embedded demo, the worker, the API and a consumer of segment changes."""

from __future__ import annotations

import argparse
import json
import sys

from segstream.config import get_settings

from .common import bank_flags, port


def _demo(args: argparse.Namespace) -> int:
    from segstream.demo import run_demo

    summary = run_demo(
        args.customers,
        args.months,
        args.seed,
        get_settings(),
        change_share=args.change_share,
        drift_share=args.drift_share,
        seasonal=args.seasonal,
    )
    if args.json:  # strict JSON: a figure that cannot be computed (no changes to score) is null, not NaN
        print(json.dumps({k: None if isinstance(v, float) and v != v else v for k, v in summary.items()}))
    else:
        width = max(map(len, summary))
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from segstream.state.redis_client import reachable
    from segstream.stream_app.kafka_config import ensure_topics, verify

    verify(get_settings())
    ensure_topics(get_settings())  # a topic set to lose records stops the worker here, with one line
    reachable(get_settings())
    from segstream.stream_app.app import build_app

    app = build_app(get_settings())
    sys.argv = ["segstream worker", "worker", "-l", args.loglevel]
    app.main()
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from segstream.stream_app.api import create_app
    from segstream.stream_app.api.deadline import with_request_deadline
    from segstream.stream_app.auth import KeyRing

    s = get_settings()
    ring = KeyRing.load(s.api_keys_file, s.api_keys)
    if not ring.all_keys:  # a local run works without setup, and still never answers anonymously
        key, stored = KeyRing.new("development", "admin")
        ring.keys.append(stored)
        print(
            f"segstream api: no API keys configured (SEGSTREAM_API_KEYS_FILE); a development key with the admin "
            f"scope, valid for this run only:\n  {key}\nbrowser: any user name, this key as password; "
            f"programs: the X-API-Key header",
            file=sys.stderr,
            flush=True,
        )
    http = with_request_deadline(s.api_request_timeout_s)  # uvicorn has no request deadline of its own
    uvicorn.run(create_app(s, ring), host=args.host, port=args.port, log_level="warning", http=http)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from segstream.stream_app.kafka_config import verify
    from segstream.stream_app.watch import HEADER, changes, describe

    verify(get_settings())
    if not args.json:
        print(HEADER, flush=True)
    for ch in changes(get_settings(), from_beginning=args.from_beginning, idle_timeout_s=args.idle_timeout):
        print(json.dumps(ch) if args.json else describe(ch), flush=True)
    return 0


def register(sub) -> None:
    d = sub.add_parser("demo", help="run generator -> windows -> engine in-process and score it against ground truth")
    d.add_argument("--customers", type=int, default=2000, help="generated customers (default 2000)")
    d.add_argument("--months", type=int, default=24, help="monthly windows per customer (default 24)")
    d.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    d.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    bank_flags(d)
    d.add_argument(
        "--drift-share",
        type=float,
        default=0.0,
        help="share of customers whose personality drifts to a new one over 6 months",
    )
    d.set_defaults(func=_demo)

    w = sub.add_parser("worker", help="run the Faust worker (Kafka -> engine -> Kafka, state in Redis)")
    w.add_argument("-l", "--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    w.set_defaults(func=_worker)

    a = sub.add_parser("api", help="serve the lookup API and the segment explorer page (API keys with scopes)")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=port, default=8080)
    a.set_defaults(func=_api)

    wa = sub.add_parser("watch", help="tail the segment-changes topic")
    wa.add_argument("--from-beginning", action="store_true")
    wa.add_argument("--idle-timeout", type=float, help="exit after this many seconds without a message")
    wa.add_argument("--json", action="store_true")
    wa.set_defaults(func=_watch)
