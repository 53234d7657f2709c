"""Merchant category codes and a bank's own category names, through the worker's decode path."""

from __future__ import annotations

from pathlib import Path

import iso18245
import orjson
import pytest

from segstream.assembly import event_limits, window_aggregator
from segstream.config import Settings
from segstream.core.categories import OTHER, CategoryMap, load_bank_names, mcc_table, write_review_file
from segstream.core.personality import CATEGORIES
from segstream.core.pipeline import ingest_payloads
from segstream.core.wire import Limits, decode_batch

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "event_id": "e",
    "customer_id": "C1",
    "timestamp": "2024-01-05T10:00:00+00:00",
    "amount": 12.5,
    "currency": "EUR",
}


def payloads(*fields: dict) -> list[bytes]:
    return [orjson.dumps({**BASE, "event_id": f"e{i}", **f}) for i, f in enumerate(fields)]


def test_every_iso18245_code_maps_to_one_of_ours_or_other_and_every_category_is_reached():
    table = mcc_table()
    codes = {m.mcc for m in iso18245.get_all_mccs()}
    assert set(table) == codes and len(codes) > 900
    assert {cat for cat, _, _ in table.values()} == set(CATEGORIES) | {OTHER}


@pytest.mark.parametrize(
    "code,category",
    [
        ("5411", "groceries"),
        ("5812", "restaurants"),
        ("5813", "bars_nightlife"),
        ("5921", "alcohol_tobacco"),
        ("7995", "gambling"),
        ("9406", "gambling"),
        ("4511", "travel"),
        ("3001", "travel"),
        ("3501", "hotels"),
        ("7011", "hotels"),
        ("5541", "fuel"),
        ("5912", "pharmacy"),
        ("8011", "healthcare"),
        ("5942", "books"),
        ("8220", "education"),
        ("8398", "charity"),
        ("5995", "pets"),
        ("8351", "childcare"),
        ("6300", "insurance"),
        ("5641", "childcare"),
        ("5816", "gaming"),
        ("4899", "subscriptions"),
        ("6011", OTHER),
        ("9311", OTHER),
        ("4900", OTHER),
        ("5311", OTHER),
        ("7538", OTHER),
    ],
)
def test_reviewed_codes(code, category):
    assert mcc_table()[code][0] == category


def test_the_review_file_is_the_mapping_in_use(tmp_path):
    write_review_file(tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text() == (ROOT / "docs" / "mcc_categories.csv").read_text(), (
        "docs/mcc_categories.csv is stale: regenerate it with segstream.core.categories.write_review_file"
    )


def test_decode_path_resolves_codes_and_names_and_counts_other(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("name,category\nLebensmittel,groceries\nBargeld,other\n")
    limits = Limits(now=2e9, categories=CategoryMap.from_file(names))
    d = decode_batch(
        payloads(
            {"category": "groceries"},
            {"mcc": "5812"},
            {"mcc": 5812},
            {"mcc": "6011"},
            {"category": "Lebensmittel"},
            {"category": "Bargeld"},
            {"mcc": "1234"},
            {"category": "Wein"},
            {},
        ),
        limits,
    )
    assert [CATEGORIES[i] for i in d.valid.category] == ["groceries", "restaurants", "restaurants", "groceries"]
    assert d.valid.position.tolist() == [0, 1, 2, 4]
    assert d.other == 2
    assert [(i, e.reason) for i, e in d.rejected] == [
        (6, "mcc:unknown"),
        (7, "category:unknown_category"),
        (8, "category:missing"),
    ]


def test_dlq_policy_refuses_purchases_without_personality_meaning(tmp_path):
    limits = Limits(now=2e9, categories=CategoryMap(unmapped="dlq"))
    d = decode_batch(payloads({"mcc": "6011"}, {"mcc": "5411"}), limits)
    assert len(d.valid) == 1 and d.other == 0
    assert d.rejected[0][1].reason == "category:no_personality_meaning"


def test_settings_wire_the_bank_map_into_the_workers_ingest(tmp_path, monkeypatch):
    names = tmp_path / "names.yaml"
    names.write_text("Supermarkt: groceries\nSteuern: other\n")
    s = Settings(category_map=names, unmapped_categories="other")
    ing = ingest_payloads(
        window_aggregator(s),
        payloads({"category": "Supermarkt"}, {"category": "Steuern"}, {"mcc": "7995"}),
        event_limits(s, now=2e9),
    )
    counts = ing.counts()
    assert counts["other_category"] == 1 and counts.get("invalid", 0) == 0
    assert sorted(CATEGORIES[i] for i in ing.valid.category) == ["gambling", "groceries"]


def test_a_bank_map_naming_a_category_we_do_not_have_is_refused_at_start(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Lebensmittel,food\n")
    with pytest.raises(ValueError, match="food"):
        load_bank_names(bad)
