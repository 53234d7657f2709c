"""Turning what a bank's events call a purchase into one of our spending categories.

An event names its category in one of three ways: one of our own names, the
bank's own name (mapped by a small file the bank keeps, ``SEGSTREAM_CATEGORY_MAP``),
or an ISO 18245 merchant category code (``mcc``). The code list comes from the
``iso18245`` package, never typed by hand; the rules below map it by the codes'
ranges and descriptions, and ``docs/mcc_categories.csv`` lists every code with its
category and the rule that chose it, for review (a test keeps the file in step).

Purchases that say nothing about personality (cash withdrawals, taxes, utilities,
wholesale, car repairs) map to :data:`OTHER`: with ``unmapped_categories="other"``
they are accepted and counted but do not enter the spending mix; with ``"dlq"``
they go to the dead-letter topic like any refused event.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .personality import CATEGORY_INDEX

OTHER = "other"

# Private-use blocks of ISO 18245 that card schemes fill with named merchants.
_RANGES: tuple[tuple[int, int, str], ...] = (
    (3000, 3299, "travel"),  # airlines
    (3300, 3499, "travel"),  # car rental companies
    (3500, 3999, "hotels"),  # hotel chains and resorts
)

# (category, description pattern): the first pattern that matches a code's
# description decides. Order matters where descriptions overlap (e.g. "children's
# wear" is childcare before it is clothing; "drug stores" before "drugs").
_RULES: tuple[tuple[str, str], ...] = (
    ("gambling", r"betting|lotter|casino|racing|gambling"),
    ("insurance", r"insurance"),
    ("subscriptions", r"continuity/subscription"),
    ("savings", r"securities|brokers and dealers"),
    (
        OTHER,
        r"financial institutions|wire transfer|money order|stored value|"
        r"real estate|tax |tax payments|fines|court costs|bail|government|postal|"
        r"intra-company|referral service|credential service|emergency services|"
        r"consumer credit|debt collection|legal services|accounting|"
        r"commercial equipment|commercial furniture|and commercial|commercial footwear|industrial|durable goods|non-durable|wholesale|piece goods, notions|chemicals|"
        r"metal service|construction materials|auto and home supply|motorcycle|automobile associations|membership organization|office, photographic|stationery, office supplies and printing|"
        r"typesetting|publishing and printing|speciality cleaning|motor freight|courier|warehousing|"
        r"utilities|funeral|dental/laboratory|mobile home dealers|car and truck dealers|motor vehicle supplies|"
        r"automotive|tyre|car washes|towing|parking|welding|repair shops|repair services|reupholstery|agricultural co-op|"
        r"advertising|blueprinting|photocopying|stenographic|employment agencies|management, consulting|"
        r"detective|exterminating|janitorial|business services|testing laboratories|architectural|"
        r"professional services|computer programming|information retrieval services|typewriter|"
        r"pawn|wrecking|direct marketing|door-to-door|mail order|department stores|discount shops|"
        r"variety stores|general merchandise|miscellaneous and speciality retail|marketplaces|"
        r"duty-free|laundry|dry cleaners|equipment, tool|shoe repair|"
        r"aircraft and farm equipment|telegraph|automated referral",
    ),
    ("childcare", r"child care|children's and infants'"),
    ("charity", r"charitable|religious organi|political organi|civic, social|religious goods"),
    ("bars_nightlife", r"drinking places|night-club|dance halls|dating and escort|billiard"),
    ("alcohol_tobacco", r"alcoholic beverage|beer, wine and liquor|cigar|tobacco|wine producers|champagne"),
    ("restaurants", r"eating places|restaurant|caterers"),
    ("groceries", r"grocer|supermarket|meat provisioners|candy, nut|dairies|bakeries|food shops|wholesale clubs"),
    ("public_transport", r"commuter|taxi|bus lines|passenger railways|railroads|tolls"),
    (
        "travel",
        r"airline|air carrier|airport|steamship|cruise|travel|tour operator|boat rentals|"
        r"automobile rentals|trailer rentals|recreational vehicle rentals|timeshare|"
        r"transportation services|luggage",
    ),
    ("hotels", r"lodging|hotel|trailer parks|camp-sites"),
    (
        "outdoor",
        r"recreational camps|camper|tent and awning|boat dealers|marinas|snowmobile|motor home dealers|"
        r"landscaping|swimming pools",
    ),
    ("fuel", r"service stations|fuel dispensers|vehicle charging|fuel dealers|petroleum"),
    ("pharmacy", r"drug stores|pharmac|drugs, drug"),
    (
        "healthcare",
        r"doctors|physicians|dentists|osteopath|chiropract|optometrist|opticians|podiatrist|nursing|"
        r"hospital|medical|health practitioners|hearing aids|orthopaedic|ambulance|counselling",
    ),
    ("pets", r"pet shops|veterinary"),
    ("education", r"school|college|universit|educational"),
    ("books", r"book|newsagents|news-stands|periodicals|digital goods media"),
    ("gaming", r"video game|video amusement|digital goods - games|hobby, toy and game"),
    (
        "subscriptions",
        r"subscription|pay television|digital goods - applications|large digital goods|"
        r"computer network|telecommunication services|telephone charges|telecom merchant",
    ),
    (
        "electronics",
        r"electronics|computer|camera|household appliance|telecommunication equipment|"
        r"electric razor|electrical parts",
    ),
    ("beauty", r"beauty|barber|cosmetic|spas|massage|wig"),
    (
        "sports_fitness",
        r"sporting goods|sports and riding|commercial sports|golf|membership clubs|bicycle|"
        r"bowling",
    ),
    (
        "arts_culture",
        r"art dealers|galleries|artist supply|antique|music shops|theatrical|orchestras|"
        r"motion picture theatres|aquariums|tourist attractions|record shops|stamp and coin|"
        r"photographic studios|glassware|commercial photography|sewing, needlework|scenic spots",
    ),
    ("entertainment", r"amusement|recreation services|motion picture|video tape|circus"),
    ("gifts", r"gift|card, novelty|souvenir|florist|jewel"),
    ("fashion", r"clothing|apparel|wear|shoe shops|furriers|tailors|uniforms|footwear|accessory"),
    (
        "home_garden",
        r"furniture|home furnish|floor covering|drapery|fireplace|lawn and garden|nurser|carpet|"
        r"home supply|gardening",
    ),
    (
        "diy",
        r"hardware|lumber|building materials|glass, paint|paints|contractors|plumbing|"
        r"electrical|masonry|carpentry|roofing|concrete",
    ),
)
_COMPILED = tuple((cat, re.compile(pat)) for cat, pat in _RULES)


def _description(m: Any) -> str:
    return next(
        (
            d
            for d in (
                m.iso_description,
                m.visa_description,
                m.mastercard_description,
                m.usda_description,
                m.amex_description,
                m.alipay_description,
                m.stripe_description,
            )
            if d
        ),
        "",
    )


def classify_mcc(code: int, description: str, range_description: str) -> tuple[str, str]:
    """(category, rule) for one code: a private-use block, else the first matching description
    rule, else the code's range when it is all one kind of spending, else :data:`OTHER`."""
    for lo, hi, cat in _RANGES:
        if lo <= code <= hi:
            return cat, f"range {lo}-{hi}"
    text = description.lower()
    for cat, pat in _COMPILED:
        hit = pat.search(text) if text else None
        if hit:
            return cat, f"description has '{hit.group(0).strip()}'"
    if range_description == "Clothing outlets":
        return "fashion", "range: clothing outlets"
    return OTHER, "no rule: no personality meaning assumed"


@lru_cache(maxsize=1)
def mcc_table() -> dict[str, tuple[str, str, str]]:
    """Every ISO 18245 code in the ``iso18245`` package: code -> (category, description, rule)."""
    import iso18245

    out = {}
    for m in iso18245.get_all_mccs():
        desc = _description(m)
        cat, rule = classify_mcc(int(m.mcc), desc, m.range.description)
        out[m.mcc] = (cat, desc, rule)
    return out


def write_review_file(path: Path) -> None:
    """The reviewed mapping, one row per code (docs/mcc_categories.csv)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mcc", "category", "description", "rule"])
        for code, (cat, desc, rule) in sorted(mcc_table().items()):
            w.writerow([code, cat, desc, rule])


def load_bank_names(path: Path) -> dict[str, str]:
    """A bank's own category names: CSV (``name,category``) or YAML (``name: category``)."""
    text = Path(path).read_text()
    if Path(path).suffix in (".yaml", ".yml"):
        import yaml

        pairs = dict(yaml.safe_load(text) or {})
    else:
        rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["name", "category"]:
            rows = rows[1:]
        pairs = {r[0].strip(): r[1].strip() for r in rows}
    bad = {k: v for k, v in pairs.items() if v != OTHER and v not in CATEGORY_INDEX}
    if bad:
        raise ValueError(f"{path}: categories not ours (nor '{OTHER}'): {bad}")
    return {str(k): str(v) for k, v in pairs.items()}


class CategoryRefused(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class CategoryMap:
    """Resolves an event's ``category`` or ``mcc`` to one of ours or :data:`OTHER`."""

    bank_names: dict[str, str] = field(default_factory=dict)
    unmapped: Literal["other", "dlq"] = "other"

    @classmethod
    def from_file(cls, path: Path | None, unmapped: Literal["other", "dlq"] = "other") -> CategoryMap:
        return cls(load_bank_names(path) if path else {}, unmapped)

    def resolve(self, data: dict[str, Any]) -> str:
        """Our category for an event's fields, or raise :class:`CategoryRefused`."""
        name = data.get("category")
        if isinstance(name, str) and name:
            if name in CATEGORY_INDEX:
                return name
            if name not in self.bank_names:
                raise CategoryRefused(
                    "category:unknown_category", f"{name!r} is neither ours nor in SEGSTREAM_CATEGORY_MAP"
                )
            return self._kept(self.bank_names[name], name)
        code = data.get("mcc")
        if code is None:
            raise CategoryRefused("category:missing", "an event needs a category or an mcc")
        code = f"{code:04d}" if isinstance(code, int) and not isinstance(code, bool) else str(code).strip()
        entry = mcc_table().get(code)
        if entry is None:
            raise CategoryRefused("mcc:unknown", f"{code!r} is not an ISO 18245 code")
        return self._kept(entry[0], f"mcc {code}")

    def _kept(self, category: str, what: str) -> str:
        if category == OTHER and self.unmapped == "dlq":
            raise CategoryRefused("category:no_personality_meaning", f"{what} maps to '{OTHER}'")
        return category
