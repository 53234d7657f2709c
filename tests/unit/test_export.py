"""Reading a bank's export as it is: the sample export round-trips, and every kind of bad line
is reported with its line number and a reason, by the worker's own rules."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from segstream.cli import main
from segstream.core.wire import Limits
from segstream.producers.bank_export import write_sample_export
from segstream.producers.export import ExportMapping, ExportReport, checked_events, read_export
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

GEN = GeneratorConfig(customers=25, months=14, seed=4)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_export(tmp_path_factory.mktemp("export"), GEN)


def test_the_sample_export_reads_back_as_the_generated_purchases(sample):
    data, mapping = sample
    report = ExportReport()
    events = list(checked_events(read_export(data, ExportMapping.load(mapping)), Limits(now=4e9), report))
    truth = [e for e in SyntheticBank(GEN).events()]
    assert report.rejected == []
    assert report.credits == report.other > 25 * 10  # a salary and a cash withdrawal per active customer-month
    purchases = {e["event_id"]: e for e in events if e["mcc"] != "6011"}
    assert len(purchases) == len(truth)
    for t in truth[::97]:
        got = purchases[t["event_id"]]
        assert got["customer_id"] == "DE" + t["customer_id"][1:]
        assert got["amount"] == pytest.approx(t["amount"], abs=0.005)
        assert got["income"] == pytest.approx(t["income"], abs=0.005)
        # minutes survive local time and back (the hour repeated in October may read an hour off)
        delta = abs((datetime.fromisoformat(got["timestamp"]) - datetime.fromisoformat(t["timestamp"])).total_seconds())
        assert delta < 60 or delta == pytest.approx(3600, abs=60)


BAD = """ref;kunde;zeit;betrag;mcc
r1;K1;05.01.2024 10:00;-12,50;5411
r2;K1;2024-01-05;-12,50;5411
r3;K1;05.01.2024 10:00;-zwölf;5411
r4;;05.01.2024 10:00;-12,50;5411
r5;K1;05.01.2024 10:00;-12,50;1234
r6;K1;05.01.2024 10:00;99,00;
r7;K<b>;05.01.2024 10:00;-1,00;5812
r8;K1;05.01.2024 10:00;-2.000.000,00;5812
"""
MAP = [
    "delimiter=;",
    "customer=kunde",
    "time=zeit",
    "time_format=%d.%m.%Y %H:%M",
    "amount=betrag",
    "decimal=,",
    "thousands=.",
    "debits=negative",
    "mcc=mcc",
    "currency=",
    "event_id=ref",
]


def test_every_bad_line_is_reported_with_its_line_and_reason(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(BAD)
    overrides = dict(kv.split("=", 1) for kv in MAP)
    overrides["currency"] = None
    report = ExportReport()
    good = list(checked_events(read_export(f, ExportMapping.load(None, overrides)), Limits(now=4e9), report))
    assert [e["event_id"] for e in good] == ["r1"]
    assert report.credits == 1
    assert [(ln, r) for ln, r, _ in report.rejected] == [
        (3, "time:unparsable"),
        (4, "amount:unparsable"),
        (5, "customer:missing"),
        (6, "mcc:unknown"),
        (8, "customer_id:string_pattern_mismatch"),
        (9, "amount:out_of_range"),
    ]


def test_dry_run_publishes_nothing_and_fails_with_the_rejects_listed(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text(BAD)
    rejects = tmp_path / "rejects.csv"
    args = ["produce", "file", "--path", str(f), "--dry-run", "--rejects", str(rejects)]
    for kv in MAP:
        args += ["--map", kv]
    code = main(args)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and out["produced"] == 0 and out["rejected"] == 6 and out["events"] == 1
    assert out["first_rejected"][0] == {
        "line": 3,
        "reason": "time:unparsable",
        "detail": "'2024-01-05' does not match %d.%m.%Y %H:%M",
    }
    assert rejects.read_text().splitlines()[1].startswith("3,time:unparsable,")


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"mcc": "mcc", "category": "cat"}, "exactly one of category and mcc"),
        ({"debits": "column"}, "direction column"),
        ({"debits": "sometimes"}, "debits"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_mapping_errors_say_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExportMapping.load(None, overrides)


def test_a_column_the_file_lacks_is_named(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no column .*customer_id"):
        list(read_export(f, ExportMapping()))


def test_swapped_separators_are_found_in_the_data_not_read_as_other_amounts(tmp_path):
    """Issue 29: with decimal and thousands swapped in the mapping, the dry run reported 0 refused
    while -44,40 became 4,440 EUR and an income of 1.340,00 became 1.34."""
    from segstream.producers.export import ExportMapping, read_export

    path = tmp_path / "export.csv"
    path.write_text(
        "customer_id;timestamp;amount;category;income\n"
        "C1;2024-03-01T10:00:00Z;-44,40;books;1.340,00\n"
        "C1;2024-03-02T10:00:00Z;-1.234,50;books;1.340,00\n"
    )
    common = {"delimiter": ";", "debits": "negative", "income": "income", "currency": None, "event_id": None}
    right = ExportMapping(decimal=",", thousands=".", **common)
    swapped = ExportMapping(decimal=".", thousands=",", **common)
    ok = list(read_export(path, right))
    assert [r.event["amount"] for r in ok] == [44.4, 1234.5] and ok[0].event["income"] == 1340.0
    bad = list(read_export(path, swapped))
    assert [r.reason for r in bad] == ["amount:separators", "amount:separators"]
    assert "swapped" in bad[0].detail
