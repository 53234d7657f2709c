"""A realistic bank export of generated customers, for trying "your own data" end to end.

It looks like a German current-account export, not like segstream's schema: its own
column names, ``;`` separators, ``25.12.2024 18:30`` local times, decimal commas with
thousands points, purchases as negative amounts, monthly salary credits, ATM
withdrawals (MCC 6011, no personality meaning) and a real ISO 18245 code on every
card payment. ``mapping.yaml`` beside it is the mapping a data engineer would write.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from segstream.core.categories import mcc_table
from segstream.core.personality import CATEGORIES

from .synthetic import GeneratorConfig, SyntheticBank

MAPPING = """\
# How to read this export (producers/export.py::ExportMapping)
delimiter: ";"
customer: Kundennummer
time: Buchungszeit
time_format: "%d.%m.%Y %H:%M"
timezone: Europe/Berlin
amount: Betrag
decimal: ","
thousands: "."
debits: negative
mcc: MCC
category: null
currency: Waehrung
income: Nettoeinkommen
event_id: Buchungsreferenz
"""
HEADER = "Buchungsreferenz;Kundennummer;Buchungszeit;Betrag;Waehrung;MCC;Verwendungszweck;Nettoeinkommen"
BERLIN = ZoneInfo("Europe/Berlin")


def _german(x: float) -> str:
    """-1234.5 -> '-1.234,50'"""
    return f"{x:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def _codes_by_category(rng: np.random.Generator) -> dict[str, list[str]]:
    """Per category, its ISO 18245 codes: the generic codes first, a few named chains for colour."""
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for code, (cat, _, _) in sorted(mcc_table().items()):
        if cat in out and not 3000 <= int(code) <= 3999:
            out[cat].append(code)
    for cat in ("travel", "hotels"):
        chains = [c for c, (k, _, _) in mcc_table().items() if k == cat and 3000 <= int(c) <= 3999]
        out[cat] += list(rng.choice(chains, 5, replace=False))
    return out


def write_sample_export(folder: Path, config: GeneratorConfig) -> tuple[Path, Path]:
    """transactions.csv and mapping.yaml in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed + 1000)
    codes = _codes_by_category(rng)
    bank = SyntheticBank(config)
    path = folder / "transactions.csv"
    seen_month: set[tuple[str, int, int]] = set()
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        for ev in bank.events():
            cid = "DE" + ev["customer_id"].removeprefix("C")
            t = datetime.fromisoformat(ev["timestamp"]).astimezone(BERLIN)
            income = _german(ev["income"])
            if (cid, t.year, t.month) not in seen_month:  # the month's salary, and a cash withdrawal
                seen_month.add((cid, t.year, t.month))
                pay = t.replace(day=1, hour=6, minute=0)
                f.write(f"SAL-{cid}-{pay:%Y%m};{cid};{pay:%d.%m.%Y %H:%M};{income};EUR;;Gehalt;{income}\n")
                f.write(
                    f"ATM-{cid}-{pay:%Y%m};{cid};{pay:%d.%m.%Y} 12:00;{_german(-200.0)};EUR;6011;Geldautomat;{income}\n"
                )
            mcc = rng.choice(codes[ev["category"]])
            f.write(
                f"{ev['event_id']};{cid};{t:%d.%m.%Y %H:%M};{_german(-ev['amount'])};{ev['currency']};{mcc};"
                f"Kartenzahlung;{income}\n"
            )
    (folder / "mapping.yaml").write_text(MAPPING)
    return path, folder / "mapping.yaml"
