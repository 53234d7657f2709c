"""Administration: repair (recover), erasure (forget), API keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import orjson

from segstream.config import get_settings


def _forget(args: argparse.Namespace) -> int:
    from segstream.models.artefact import ModelArtefact
    from segstream.state.redis_client import client_for
    from segstream.state.redis_store import RedisStateStore
    from segstream.stream_app.erasure import Eraser

    s = get_settings()
    art = ModelArtefact.load(s.model_path)
    r = client_for(s)
    eraser = Eraser(s, r, RedisStateStore.for_deployment(r, s, art.hidden_size, art.version))
    try:
        return _erase(args, s, eraser)
    finally:
        eraser.close()


def _erase(args: argparse.Namespace, s, eraser) -> int:
    from dataclasses import asdict

    if args.consent:
        for cid in args.customer_ids:
            print(
                json.dumps({"customer_id": cid, "withheld_before": eraser.consent(cid, publish=not args.no_tombstone)})
            )
        return 0
    ids = list(args.customer_ids)
    if not ids and not args.inactive:
        print("segstream forget: no customer ids given (nothing was erased)", file=sys.stderr)
        return 2
    if args.inactive:
        n = args.inactive_windows or s.retention_windows
        if n <= 0:
            print("segstream forget --inactive: set --inactive-windows or SEGSTREAM_RETENTION_WINDOWS", file=sys.stderr)
            return 2
        ids += eraser.inactive(n)
    incomplete = 0
    for cid in ids:
        done = eraser.forget(cid, publish=not args.no_tombstone)
        incomplete += not ((done.tombstone and done.logged) or args.no_tombstone)
        print(json.dumps(asdict(done)))
    if incomplete:
        print(
            f"segstream forget: {incomplete} of {len(ids)} erasures are incomplete (the tombstone or the erasure "
            "record did not reach the broker); run the same command again once it is reachable",
            file=sys.stderr,
        )
        return 1
    return 0


def _api_key(args: argparse.Namespace) -> int:
    """Print a new key once; store only its digest."""
    from segstream.stream_app.auth import KeyRing

    key, stored = KeyRing.new(args.name, args.scope)
    with open(args.file, "a") as f:
        f.write(stored.line() + "\n")
    print(key)
    print(
        f"added {stored.name!r} ({stored.scope}) to {args.file}; the key is not stored and is shown only now",
        file=sys.stderr,
    )
    return 0


def _recover(args: argparse.Namespace) -> int:
    from segstream.stream_app.recovery import recover

    out = recover(get_settings(), take_over=args.take_over, dry_run=args.dry_run, rebuild=args.rebuild)
    out = out.report(args.dry_run)
    print(orjson.dumps(out).decode())
    return 0


def register(sub) -> None:
    rc = sub.add_parser(
        "recover",
        help="repair halted partitions: move their checkpoints to the start of the log the broker holds "
        "(after a lost Redis, a recreated topic or records lost to retention), or open windows to the partitions "
        "a topic's new partition count sends their customers to; the worker resumes by itself",
    )
    rc.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    rc.add_argument("--take-over", action="store_true", help="hand the namespace's partitions to this consumer group")
    rc.add_argument(
        "--rebuild",
        action="store_true",
        help="the deployment's states are kept under another layout (another model artefact or bucket count): "
        "delete them and the checkpoints, and rebuild every state under these settings from the retained topic",
    )
    rc.set_defaults(func=_recover)

    f = sub.add_parser("forget", help="erase customers: state, trajectory, open windows; tombstone downstream")
    f.add_argument("customer_ids", nargs="*")
    f.add_argument(
        "--inactive",
        action="store_true",
        help="also every customer with no window in the last --inactive-windows (retention)",
    )
    f.add_argument("--inactive-windows", type=int, default=0, help="default: SEGSTREAM_RETENTION_WINDOWS")
    f.add_argument(
        "--no-tombstone",
        action="store_true",
        help="publish neither the tombstone nor the erasure record (no broker reachable; a Redis lost later "
        "would not remember this erasure)",
    )
    f.add_argument("--consent", action="store_true", help="undo the withholding: the customers' new events count again")
    f.set_defaults(func=_forget)

    k = sub.add_parser("api-key", help="create an API key: prints it once, appends its digest to the keys file")
    k.add_argument("name", help="who holds it (one word), e.g. marketing")
    k.add_argument("--scope", required=True, choices=["segments", "customers", "admin"])
    k.add_argument("--file", type=Path, default=Path("api-keys.txt"), help="the keys file (SEGSTREAM_API_KEYS_FILE)")
    k.set_defaults(func=_api_key)
