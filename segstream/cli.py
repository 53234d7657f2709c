"""The ``segstream`` command: one entry point per job."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import orjson

from segstream.config import get_settings
from segstream.errors import SegstreamError


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


def _train(args: argparse.Namespace) -> int:
    from segstream.models.training import TrainConfig, train

    if args.transactions:
        return _train_history(args)
    from segstream.producers.synthetic import SyntheticBank

    gen = _generator(args)
    bank = SyntheticBank(gen)
    spend, active = bank.monthly_spend()
    cfg = TrainConfig(
        hidden_size=args.hidden, n_segments=20 if args.segments is None else args.segments, seed=args.seed
    )
    log = _progress(args)  # a line per epoch on stderr: stdout carries the result's JSON
    source = {
        "generator_customers": args.customers,
        "generator_months": args.months,
        "generator_seasonal": args.seasonal,
        "generator_change_share": args.change_share,
    }
    artefact = train(spend, active, cfg, source=source, log=log, first_month=gen.start_month - 1)
    return _save(artefact, args.out)


def _generator(args: argparse.Namespace):
    """The synthetic bank the flags describe (_bank_flags and the customers/months/seed flags)."""
    from segstream.producers.synthetic import GeneratorConfig

    return GeneratorConfig(
        customers=args.customers,
        months=args.months,
        seed=args.seed,
        seasonal=args.seasonal,
        change_share=args.change_share,
    )


def _save(artefact, out: Path | None) -> int:
    out = out or Path("var/models") / f"{artefact.version}.pt"  # never the shipped one unless named
    artefact.save(out)
    brief = {k: v for k, v in artefact.trained_on.items() if k not in ("curve", "segment_choice")}
    print(json.dumps({"model_version": artefact.version, "path": str(out), **brief}, default=str))
    return 0


def _train_history(args: argparse.Namespace) -> int:
    """A model from the bank's own export: windows by the worker's aggregator, a chronological
    split, the number of segments from the hidden states unless given, and a report."""
    from tqdm import tqdm

    from segstream.models.history import load_history
    from segstream.models.report import write_report
    from segstream.models.training import TrainConfig, train
    from segstream.producers.export import ExportMapping, count_lines

    if not args.out:
        raise SystemExit("segstream train --transactions: give --out for the new artefact (the shipped one stays)")
    mapping = ExportMapping.load(args.mapping, dict(kv.split("=", 1) for kv in args.map))
    settings = get_settings()
    with tqdm(total=count_lines(args.transactions), unit="line", desc="windows", file=sys.stderr) as bar:
        hist = load_history(args.transactions, mapping, settings, progress=bar.update)
    if hist.report.rejected:
        print(
            f"{len(hist.report.rejected)} lines refused: {hist.report.summary(5)['reasons']} "
            f"(see them with: segstream produce file --dry-run)",
            file=sys.stderr,
        )
    cfg = TrainConfig(hidden_size=args.hidden, n_segments=args.segments or 0, seed=args.seed, split="chronological")
    epochs = tqdm(total=cfg.epochs, unit="epoch", desc="training", file=sys.stderr)

    def log(msg: str) -> None:
        if msg.startswith("epoch"):
            epochs.update(1)
            epochs.set_postfix_str(msg.split("  ", 1)[1])
        else:
            tqdm.write(msg, file=sys.stderr)

    source = {
        "transactions": str(args.transactions),
        "customers": len(hist.customers),
        "months": int(hist.spend_fraction.shape[1]),
        "first_window": hist.first_window,
        "lines": hist.report.lines,
        "refused": len(hist.report.rejected),
    }
    artefact = train(hist.spend_fraction, hist.active, cfg, source=source, log=log, first_month=hist.first_month)
    epochs.close()
    report = write_report(artefact, hist, args.report or args.out.with_suffix(".report"), str(args.transactions))
    print(f"training report: {report}", file=sys.stderr)
    return _save(artefact, args.out)


def _progress(args: argparse.Namespace):
    """Long jobs say what they are doing on stderr, unless asked not to."""
    return (lambda *_: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))


def _evaluate(args: argparse.Namespace) -> int:
    if args.tracking:
        return _evaluate_tracking(args)
    from segstream.models.research.evaluation import EvalConfig, evaluate, plot_trajectories, to_markdown

    cfg = (
        EvalConfig()
        if not args.quick
        else EvalConfig(
            train_customers=800,
            test_customers=400,
            months=12,
            epochs=15,
            elbow_sizes=(1, 3, 8),
            elbow_epochs=5,
            transfer_repeats=3,
            transfer_steps=40,
        )
    )
    berka = args.berka if args.berka else (_shared("berka") if not args.quick else None)
    res = evaluate(cfg, log=_progress(args), berka_folder=berka)
    feats, test = res.pop("_features"), res.pop("_test")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(res, indent=2))
    (args.out / "evaluation.md").write_text(
        "# Evaluation\n\nGenerated by `segstream evaluate" + (" --quick" if args.quick else "") + "`; "
        f"{res['seconds']} s on this machine.\n\n" + to_markdown(res)
    )
    if not args.no_plots:
        for name in ("recurrent_predictor", "feedforward_predictor", "recurrent_autoencoder"):
            plot_trajectories(feats[name], test, args.out / f"trajectories_{name}.png", name.replace("_", " "))
    if args.json:
        print(json.dumps(res))
    else:
        print(to_markdown(res))
    return 0


def _evaluate_tracking(args: argparse.Namespace) -> int:
    from segstream.models.research.tracking import Scenario, compare, plot_frontier, to_markdown

    sc = Scenario(customers=400, months=16) if args.quick else Scenario()
    res = compare(sc, log=_progress(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracking.json").write_text(json.dumps(res, indent=2, default=float))
    cmd = "segstream evaluate --tracking" + (" --quick" if args.quick else "")
    (args.out / "tracking.md").write_text(
        f"# Following personality changes\n\nGenerated by `{cmd}` on {sc}.\n\n" + to_markdown(res)
    )
    if not args.no_plots:
        plot_frontier(res, args.out / "tracking_frontier.png")
    print(json.dumps(res, default=float) if args.json else to_markdown(res))
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from segstream.stream_app.api import create_app
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
    uvicorn.run(create_app(s, ring), host=args.host, port=args.port, log_level="warning")
    return 0


def _forget(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from segstream.models.artefact import ModelArtefact
    from segstream.state.redis_client import client_for
    from segstream.state.redis_store import RedisStateStore
    from segstream.stream_app.erasure import Eraser

    s = get_settings()
    art = ModelArtefact.load(s.model_path)
    r = client_for(s)
    eraser = Eraser(s, r, RedisStateStore.for_deployment(r, s, art.hidden_size, art.version))
    if args.consent:
        for cid in args.customer_ids:
            print(json.dumps({"customer_id": cid, "withheld_before": eraser.consent(cid)}))
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
        incomplete += not (done.tombstone or args.no_tombstone)
        print(json.dumps(asdict(done)))
    if incomplete:
        print(
            f"segstream forget: {incomplete} of {len(ids)} erasures are incomplete (no tombstone reached the "
            "broker); run the same command again once it is reachable",
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


def _worker(args: argparse.Namespace) -> int:
    from segstream.state.redis_client import reachable
    from segstream.stream_app.kafka_config import verify

    verify(get_settings())
    reachable(get_settings())
    from segstream.stream_app.app import build_app

    app = build_app(get_settings())
    sys.argv = ["segstream worker", "worker", "-l", args.loglevel]
    app.main()
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from segstream.assembly import event_limits
    from segstream.producers.export import ExportMapping, ExportReport, count_lines
    from segstream.stream_app import bootstrap

    s = get_settings()
    if args.path.suffix in (".jsonl", ".ndjson", ".json"):
        payloads, report = bootstrap.jsonl_payloads(args.path), None
    else:
        mapping = ExportMapping.load(args.mapping, dict(kv.split("=", 1) for kv in args.map))
        report = ExportReport()
        payloads = bootstrap.export_payloads(args.path, mapping, event_limits(s, now=time.time()), report)
    with tqdm(total=count_lines(args.path) + 1, unit="event", file=sys.stderr, disable=args.quiet) as bar:
        done = bootstrap.run(s, payloads, progress=bar.update, processes=args.processes)
    out = done.summary()
    if report is not None:
        out["export"] = report.summary()
    print(orjson.dumps(out).decode())
    return 1 if out["rejected"] or (report is not None and report.rejected) else 0


def _recover(args: argparse.Namespace) -> int:
    from segstream.stream_app.recovery import recover, report

    out = report(recover(get_settings(), take_over=args.take_over, dry_run=args.dry_run), args.dry_run)
    print(orjson.dumps(out).decode())
    return 0


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
        events = sources.cdnow(args.path or _shared("cdnow/CDNOW_master.txt"))
    else:
        events = sources.berka_orders(args.path or _shared("berka"))
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

    gen = _generator(args)
    data, mapping = write_sample_export(args.folder, gen)
    print(json.dumps({"export": str(data), "mapping": str(mapping)}))
    return 0


def _classic(args: argparse.Namespace) -> int:
    from segstream.models.research.classic import ClassicConfig, run, write_report

    data = args.data or _shared("cc_general/CC_GENERAL.csv")
    res, arrays = run(data, ClassicConfig(k=args.k, tree_depth=args.depth))
    report = write_report(res, arrays, args.out)
    print(json.dumps(res) if args.json else f"report: {report}")
    return 0


def _shared(rel: str) -> Path:
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        cand = base / ".." / "shared" / "data" / rel
        if cand.exists():
            return cand.resolve()
    raise SystemExit(f"cannot find ../shared/data/{rel}; pass --path")


def _watch(args: argparse.Namespace) -> int:
    from segstream.stream_app.kafka_config import verify
    from segstream.stream_app.watch import HEADER, changes, describe

    verify(get_settings())
    if not args.json:
        print(HEADER, flush=True)
    for ch in changes(get_settings(), from_beginning=args.from_beginning, idle_timeout_s=args.idle_timeout):
        print(json.dumps(ch) if args.json else describe(ch), flush=True)
    return 0


def _bank_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--change-share",
        type=float,
        default=0.0,
        help="share of generated customers whose personality changes abruptly at a random month",
    )
    p.add_argument("--seasonal", action="store_true", help="December and summer spending that is not personality")


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    from segstream import __version__

    p = argparse.ArgumentParser(prog="segstream", description=__doc__)
    p.add_argument("--version", action="version", version=f"segstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run generator -> windows -> engine in-process and score it against ground truth")
    d.add_argument("--customers", type=int, default=2000, help="generated customers (default 2000)")
    d.add_argument("--months", type=int, default=24, help="monthly windows per customer (default 24)")
    d.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    d.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    _bank_flags(d)
    d.add_argument(
        "--drift-share",
        type=float,
        default=0.0,
        help="share of customers whose personality drifts to a new one over 6 months",
    )
    d.set_defaults(func=_demo)

    t = sub.add_parser("train", help="train the recurrent predictor on generated customers and save an artefact")
    t.add_argument("--customers", type=int, default=10000, help="generated customers to train on (default 10000)")
    t.add_argument("--months", type=int, default=24, help="months of history per generated customer (default 24)")
    t.add_argument("--seed", type=int, default=1, help="seed of the generator, the split and the weights (default 1)")
    t.add_argument(
        "--hidden", type=int, default=12, help="LSTM hidden size: the personality space's dimensions (default 12)"
    )
    t.add_argument(
        "--segments",
        type=int,
        help="number of segments (default: 20 on generated data, from the hidden states' silhouette "
        "with --transactions)",
    )
    t.add_argument(
        "--out",
        type=Path,
        help="artefact file (default: var/models/<version>.pt; the shipped one is "
        "replaced only if you name models/artefacts/default.pt)",
    )
    t.add_argument("--transactions", type=Path, help="train on a bank export instead of generated customers")
    t.add_argument("--mapping", type=Path, help="with --transactions: the export's column mapping (YAML)")
    t.add_argument("--map", action="append", default=[], metavar="KEY=VALUE", help="one mapping field")
    t.add_argument("--report", type=Path, help="training report folder (default: beside --out, .report)")
    _bank_flags(t)
    t.add_argument("-q", "--quiet", action="store_true", help="no progress lines (one per epoch) on stderr")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="compare the four architectures' features as the paper does")
    e.add_argument(
        "--out",
        type=Path,
        default=Path("evaluation-report"),
        help="folder for the report, JSON and plots (default evaluation-report/; docs/ holds the committed run)",
    )
    e.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    e.add_argument(
        "--tracking",
        action="store_true",
        help="how well announced segments follow personality changes: frontier and baselines",
    )
    e.add_argument("--no-plots", action="store_true")
    e.add_argument("--berka", type=Path, help="Berka tables folder (default: ../shared/data/berka)")
    e.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    e.set_defaults(func=_evaluate)

    w = sub.add_parser("worker", help="run the Faust worker (Kafka -> engine -> Kafka, state in Redis)")
    w.add_argument("-l", "--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"])
    w.set_defaults(func=_worker)

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

    rc = sub.add_parser(
        "recover",
        help="repair halted partitions: move their checkpoints to the start of the log the broker holds "
        "(after a lost Redis, a recreated topic or records lost to retention); the worker resumes by itself",
    )
    rc.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    rc.add_argument("--take-over", action="store_true", help="hand the namespace's partitions to this consumer group")
    rc.set_defaults(func=_recover)

    a = sub.add_parser("api", help="serve the lookup API and the segment explorer page (API keys with scopes)")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=_port, default=8080)
    a.set_defaults(func=_api)

    f = sub.add_parser("forget", help="erase customers: state, trajectory, open windows; tombstone downstream")
    f.add_argument("customer_ids", nargs="*")
    f.add_argument(
        "--inactive",
        action="store_true",
        help="also every customer with no window in the last --inactive-windows (retention)",
    )
    f.add_argument("--inactive-windows", type=int, default=0, help="default: SEGSTREAM_RETENTION_WINDOWS")
    f.add_argument("--no-tombstone", action="store_true", help="do not publish the tombstone (no broker reachable)")
    f.add_argument("--consent", action="store_true", help="undo the withholding: the customers' new events count again")
    f.set_defaults(func=_forget)

    k = sub.add_parser("api-key", help="create an API key: prints it once, appends its digest to the keys file")
    k.add_argument("name", help="who holds it (one word), e.g. marketing")
    k.add_argument("--scope", required=True, choices=["segments", "customers", "admin"])
    k.add_argument("--file", type=Path, default=Path("api-keys.txt"), help="the keys file (SEGSTREAM_API_KEYS_FILE)")
    k.set_defaults(func=_api_key)

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
    _bank_flags(se)
    se.set_defaults(func=_sample_export)

    cl = sub.add_parser(
        "classic",
        help="the seed studies' classic segmentation (k-means, GMM, Ward, DBSCAN, PCA, "
        "a decision tree as rules) of a customer table, as a report",
    )
    cl.add_argument("--data", type=Path, help="numeric customer table, CSV (default: ../shared/data CC GENERAL)")
    cl.add_argument("--k", type=int, default=4, help="segments for the compared methods (seed 002 uses 4)")
    cl.add_argument("--depth", type=int, default=3, help="depth of the rule tree")
    cl.add_argument("--out", type=Path, default=Path("classic-report"), help="report folder")
    cl.add_argument("--json", action="store_true", help="print the results as JSON")
    cl.set_defaults(func=_classic)

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
