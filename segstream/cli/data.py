"""Data in: a bank's history (bootstrap), events to the topic (produce), a sample export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import orjson

from segstream.config import get_settings

from .common import bank_flags, generator, shared


def _bootstrap(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from segstream.assembly import event_limits
    from segstream.producers.export import ExportMapping, ExportReport, count_lines
    from segstream.stream_app import bootstrap

    s = get_settings()
    if args.path.suffix in (".jsonl", ".ndjson", ".json"):
        source, report = args.path, None  # spilled by every process at once
    else:
        mapping = ExportMapping.load(args.mapping, dict(kv.split("=", 1) for kv in args.map))
        report = ExportReport()
        source = bootstrap.export_payloads(args.path, mapping, event_limits(s, now=time.time()), report)
    with tqdm(total=count_lines(args.path) + 1, unit="event", file=sys.stderr, disable=args.quiet) as bar:
        done = bootstrap.run(s, source, progress=bar.update, processes=args.processes)
    out = done.summary()
    if report is not None:
        out["export"] = report.summary()
    print(orjson.dumps(out).decode())
    return 1 if out["rejected"] or (report is not None and report.rejected) else 0


def _produce(args: argparse.Namespace) -> int:
    """Every event is checked by the worker's own rules first: what it would refuse is reported
    (and withheld), not published to be dead-lettered unseen."""
    import time

    from segstream.assembly import event_limits
    from segstream.producers import sources
    from segstream.producers.export import ExportReport, checked
    from segstream.producers.kafka_producer import publish
    from segstream.stream_app.kafka_config import verify

    settings = get_settings()
    if not args.dry_run:  # a dry run needs no broker
        verify(settings)
    if args.source == "synthetic":
        from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

        events = SyntheticBank(GeneratorConfig(customers=args.customers, months=args.months, seed=args.seed)).events()
    elif args.source == "file":
        return _produce_file(args, settings)
    elif args.source == "cdnow":
        events = sources.cdnow(args.path or shared("cdnow/CDNOW_master.txt"))
    else:
        events = sources.berka_orders(args.path or shared("berka"))
    report = ExportReport()
    accepted = checked(events, event_limits(settings, now=time.time()), report)
    n = (
        0
        if args.dry_run
        else publish(accepted, settings, rate=args.rate, limit=args.limit, compression=args.compression)
    )
    if args.dry_run:
        for _ in accepted:
            pass
    return _produced(args, settings, n, report)


def _produced(args: argparse.Namespace, settings, n: int, report) -> int:
    """Print what was published and what the worker's own rules refused (and withheld); exit 1
    when the refused share passes --max-rejected (a dry run: any refused line, by default)."""
    if args.rejects:
        with open(args.rejects, "w") as f:
            f.write("line,reason,detail\n")
            f.writelines(f'{ln},{r},"{d.replace(chr(34), chr(39))}"\n' for ln, r, d in report.rejected)
    out = {"dry_run": args.dry_run, "produced": n, "topic": settings.topic_transactions, **report.summary()}
    print(json.dumps(out))
    limit = args.max_rejected if args.max_rejected is not None else (0.0 if args.dry_run else 1.0)
    share = len(report.rejected) / max(report.lines, 1)
    if report.rejected:
        print(
            f"segstream produce: {len(report.rejected)} of {report.lines} refused by the worker's rules and not "
            f"published ({share:.1%}): {out['reasons']}",
            file=sys.stderr,
        )
    return 1 if share > limit else 0


def _produce_file(args: argparse.Namespace, settings) -> int:
    """A bank export as it is: every line checked by the worker's own rules; --dry-run publishes nothing."""
    import time

    from tqdm import tqdm

    from segstream.assembly import event_limits
    from segstream.producers.export import ExportMapping, ExportReport, checked_events, count_lines, read_export

    if not args.path:
        raise SystemExit("segstream produce file: --path EXPORT is required")
    overrides = dict(kv.split("=", 1) for kv in args.map)
    try:
        mapping = ExportMapping.load(args.mapping, overrides)
    except (ValueError, OSError) as err:
        raise SystemExit(f"segstream produce file: the column mapping is not usable: {err}") from None
    report = ExportReport()
    bar = tqdm(total=count_lines(args.path), unit="line", file=sys.stderr, disable=not sys.stderr.isatty())
    rows = read_export(args.path, mapping)

    def counted():
        for row in rows:
            bar.update(1)
            yield row

    events = checked_events(counted(), event_limits(settings, now=time.time()), report)
    try:
        if args.dry_run:
            for _ in events:
                pass
            n = 0
        else:
            from segstream.producers.kafka_producer import publish

            n = publish(
                events, settings, rate=args.rate, limit=args.limit, compression=args.compression, progress=False
            )
    except ValueError as err:
        raise SystemExit(f"segstream produce file: {err}") from None
    finally:
        bar.close()
    return _produced(args, settings, n, report)


def _sample_export(args: argparse.Namespace) -> int:
    from segstream.producers.bank_export import write_sample_export

    gen = generator(args)
    data, mapping = write_sample_export(args.folder, gen)
    print(json.dumps({"export": str(data), "mapping": str(mapping)}))
    return 0


def register(sub) -> None:
    bs = sub.add_parser(
        "bootstrap",
        help="go live with history: build every customer's state from canonical events (.jsonl) or a bank export "
        "(with --mapping) by the worker's own arithmetic, then hand over to the topic at a recorded cut-off",
    )
    bs.add_argument("--path", type=Path, required=True, help="events (.jsonl) or a bank export (CSV/Parquet)")
    bs.add_argument("--mapping", type=Path, help="the export's column mapping (YAML), as for produce file")
    bs.add_argument("--map", action="append", default=[], metavar="KEY=VALUE", help="one mapping field")
    bs.add_argument("--processes", type=int, help="partitions applied at once (default: one process per core)")
    bs.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    bs.set_defaults(func=_bootstrap)

    pr = sub.add_parser("produce", help="publish events to the transactions topic with kafka-python")
    pr.add_argument("source", choices=["synthetic", "file", "cdnow", "berka"])
    pr.add_argument("--path", type=Path, help="event file (CSV/Parquet) or data set location")
    pr.add_argument("--customers", type=int, default=1000)
    pr.add_argument("--months", type=int, default=12)
    pr.add_argument("--seed", type=int, default=7)
    pr.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    pr.add_argument("--limit", type=int)
    pr.add_argument(
        "--compression",
        default="gzip",
        choices=["gzip", "snappy", "lz4", "zstd", "none"],
        help="record batch compression (the worker reads every codec Kafka has)",
    )
    pr.add_argument("--mapping", type=Path, help="file: YAML column mapping of the export (producers/export.py)")
    pr.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="file: one mapping field, e.g. --map mcc=MCC --map decimal=, (overrides --mapping)",
    )
    pr.add_argument(
        "--dry-run",
        action="store_true",
        help="check every line or event by the worker's rules and report; publish nothing (exit 1 if any is refused)",
    )
    pr.add_argument("--rejects", type=Path, help="write every refused line or event (number, reason, detail) as CSV")
    pr.add_argument(
        "--max-rejected",
        type=float,
        metavar="SHARE",
        help="exit 1 when more than this share of events is refused (default: never for a real run, 0 for a dry run)",
    )
    pr.set_defaults(func=_produce)

    se = sub.add_parser(
        "sample-export",
        help="write a realistic bank export (MCCs, German columns and numbers) "
        "of generated customers, and its column mapping",
    )
    se.add_argument("folder", type=Path)
    se.add_argument("--customers", type=int, default=300)
    se.add_argument("--months", type=int, default=24)
    se.add_argument("--seed", type=int, default=5)
    bank_flags(se)
    se.set_defaults(func=_sample_export)
