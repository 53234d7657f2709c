"""Per-customer tumbling windows in event time, closed by a watermark.

The watermark is the largest event time seen minus the allowed lateness; a
window closes once its end is at or behind the watermark. An event for a window
that has already closed is *late*: it is counted and reported, never silently
merged or dropped. Calendar months are the default window because that is how a
bank reads spending against a monthly income.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .columns import TransactionColumns

Outcome = Literal["ok", "late", "duplicate"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "late", "duplicate")  # codes 0, 1, 2 of add_columns
OK, LATE, DUPLICATE = 0, 1, 2
_EPOCH_MONTH = 1970 * 12


@dataclass(frozen=True)
class WindowSpec:
    months: int = 1  # calendar months per window; 0 means fixed ``seconds``
    seconds: int = 0

    def __post_init__(self) -> None:
        if (self.months > 0) == (self.seconds > 0):
            raise ValueError("set exactly one of months or seconds")

    def index(self, ts: float) -> int:
        """Window number of an event time; consecutive windows have consecutive numbers."""
        return int(self.indices(np.array([ts], np.float64))[0])

    def indices(self, ts: np.ndarray) -> np.ndarray:
        """Window numbers of many event times at once (non-negative epoch seconds)."""
        if self.seconds:
            return np.floor_divide(ts, self.seconds).astype(np.int64)
        months = np.floor(ts).astype(np.int64).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
        return (months + _EPOCH_MONTH) // self.months

    def starts(self, index: np.ndarray) -> np.ndarray:
        """Start times of many windows at once."""
        if self.seconds:
            return index.astype(np.float64) * self.seconds
        months = index * self.months - _EPOCH_MONTH
        return months.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64).astype(np.float64)

    def ends(self, index: np.ndarray) -> np.ndarray:
        return self.starts(index + 1)

    def start(self, index: int) -> float:
        return float(self.starts(np.array([index], np.int64))[0])

    def end(self, index: int) -> float:
        return self.start(index + 1)


@dataclass(slots=True)  # a month end makes one per customer: creation time counts
class ClosedWindow:
    customer_id: str
    index: int
    start: float
    end: float
    spend: np.ndarray  # [K] spend per category in EUR
    n_events: int
    income: float | None  # monthly income in EUR, if any event carried one

    def normalised_spend(self) -> np.ndarray:
        return normalised_spend([self])[0]


def normalised_spend(windows: Sequence[ClosedWindow]) -> np.ndarray:
    """[n, K] spend per category as a fraction of monthly income (of total spend if income is unknown).

    For a whole batch at once: the engine's input matrix, built on arrays.
    """
    spend = np.stack([w.spend for w in windows])
    income = np.fromiter((w.income or 0.0 for w in windows), np.float64, len(windows))
    denom = np.where(income > 0, income, spend.sum(axis=1))
    return spend / np.where(denom > 0, denom, 1.0)[:, None]


@dataclass
class WindowRows:
    """Windows of one window number as rows: a checkpoint's unit, in either direction.

    ``records`` holds per customer [events, income (NaN = unknown), spend per category];
    ``keys`` the dedup digests (all of them in a snapshot, new ones in a delta).
    """

    index: int
    customers: list[str]
    records: np.ndarray  # [m, 2 + K] float64
    keys: np.ndarray  # [k] uint64


def outcome_counts(code: np.ndarray) -> dict[Outcome, int]:
    """Events per outcome, from the codes add_columns returns."""
    return dict(zip(OUTCOMES, np.bincount(code, minlength=len(OUTCOMES)).tolist()))


def merge_window_record(held: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """One customer's window from two parts (a record layout row each): counts and spend add; the
    income is the held part's if it knows one (its events are the later ones), else the moved part's."""
    out = held + moved
    out[1] = held[1] if held[1] == held[1] else moved[1]
    return out


def _blank(rows: int, n_categories: int) -> np.ndarray:
    data = np.zeros((rows, 2 + n_categories))  # columns: n, income (NaN = unknown), spend...
    data[:, 1] = np.nan
    return data


class _Table:
    """The open windows of one window number: customers are rows of growing arrays."""

    def __init__(self, n_categories: int, capacity: int = 64):
        self.rows: dict[str, int] = {}
        self.customers: list[str] = []
        self.data = _blank(capacity, n_categories)
        self.keys: set[int] = set()
        self.dirty: set[int] = set()
        self.new_keys: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.customers)

    def rows_of(self, customers: list[str]) -> np.ndarray:
        get = self.rows.get
        rows = [get(c, -1) for c in customers]
        if -1 in rows:
            for i, r in enumerate(rows):
                if r == -1:
                    rows[i] = self._append(customers[i])
        return np.array(rows, np.int64)

    def _append(self, customer: str) -> int:
        row = self.rows.get(customer)
        if row is not None:  # appeared twice among this batch's new customers
            return row
        row = self.rows[customer] = len(self.customers)
        self.customers.append(customer)
        if row == len(self.data):
            grown = _blank(2 * len(self.data), self.data.shape[1] - 2)
            grown[:row] = self.data
            self.data = grown
        return row

    def growth_bytes(self, rows: int) -> int:
        """What ``rows`` more customers could allocate at once: a full table doubles, and the old
        and the new array are both resident while it copies."""
        if len(self.customers) + rows <= len(self.data):
            return 0
        return 2 * self.data.nbytes

    def seen(self, keys: np.ndarray) -> np.ndarray:
        """Which keys this window counted in an earlier batch."""
        listed = keys.tolist()
        if self.keys.isdisjoint(listed):
            return np.zeros(len(listed), bool)
        return np.fromiter((k in self.keys for k in listed), bool, len(listed))


class WindowAggregator:
    """Accumulates transactions into open windows and hands out the closed ones."""

    def __init__(self, spec: WindowSpec, n_categories: int, allowed_lateness_s: float = 0.0, quorum: int = 1):
        self.spec = spec
        self.n_categories = n_categories
        self.allowed_lateness_s = float(allowed_lateness_s)
        # The event-time clock advances to t only once ``quorum`` distinct customers have an event
        # at or past t: one customer's wrong clock (a mis-dated row, a terminal stamping days
        # ahead), however many events it sends, cannot close a month for everybody.
        self.quorum = max(int(quorum), 1)
        self.leaders: dict[str, float] = {}  # the quorum customers with the latest events: id -> time
        self.max_event_time = float("-inf")  # the clock: event time the watermark trails
        self._open: dict[int, _Table] = {}
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._closed: list[int] = []  # window numbers closed since the last checkpoint

    @property
    def watermark(self) -> float:
        return self.max_event_time - self.allowed_lateness_s

    @property
    def open_windows(self) -> int:
        return sum(len(t) for t in self._open.values())

    def growth_bytes(self, rows: int) -> int:
        """The most the next ``rows`` records could grow these windows' arrays by (the memory
        bound keeps this much headroom, so the batch after its check cannot cross it)."""
        return max((t.growth_bytes(rows) for t in self._open.values()), default=0)

    @property
    def dirty_rows(self) -> int:
        """Rows changed since the last checkpoint: what the next one writes."""
        return sum(len(t.dirty) for t in self._open.values())

    @property
    def window_numbers(self) -> list[int]:
        """Window numbers with an open window."""
        return sorted(self._open)

    def add(
        self,
        customer_id: str,
        ts: float,
        category: int,
        amount: float,
        income: float | None = None,
        event_id: str | None = None,
    ) -> Outcome:
        """One event (amounts in EUR); streams use :meth:`add_columns`."""
        code = self.add_columns(TransactionColumns.of([(customer_id, ts, category, amount, income, event_id)]))
        return OUTCOMES[int(code[0])]

    def add_columns(self, tx: TransactionColumns) -> np.ndarray:
        """Add a batch in arrival order; returns an outcome code per event (OK, LATE, DUPLICATE).

        Same result as adding the events one by one: an event is late when its window
        ends at or before the watermark of the events before it, and a duplicate when
        its key was counted in its window before. The clock the watermark trails is the
        largest t that ``quorum`` consecutive events reached (with a quorum of 1, the
        largest event time seen; a late event cannot advance it either way).
        """
        n = len(tx)
        code = np.zeros(n, np.int8)
        if not n:
            return code
        idx = self.spec.indices(tx.timestamp)
        ends = self.spec.ends(idx)
        after = self._clock_if_none_late(tx.timestamp, tx.customer_id, ends) if self.quorum > 1 else None
        if after is not None:  # the usual batch: nothing in it is late, the clock's end is all it needs
            self.max_event_time, self.leaders = after
        else:
            clock = np.maximum.accumulate(np.maximum(self._reached(tx.timestamp, tx.customer_id), self.max_event_time))
            before = np.concatenate(([self.max_event_time], clock[:-1]))
            code[ends <= before - self.allowed_lateness_s] = LATE
            self.max_event_time = float(clock[-1])
        live = np.flatnonzero(code == OK)
        for w in np.unique(idx[live]).tolist():
            sel = live[idx[live] == w]
            self._add_window(w, tx, sel, code)
        for label, k in outcome_counts(code).items():
            self.counts[label] += k
        return code

    def _clock_if_none_late(self, ts: np.ndarray, customers, ends: np.ndarray) -> tuple[float, dict] | None:
        """(clock, leaders) after the batch, if no event of it can be late; else None.

        The clock never goes back, so if no event's window ends at or before the clock the
        batch ends with (less the lateness), none is late, and only that end is needed: the
        quorum-th latest of the customers' latest times, found by walking the batch from its
        latest event down (with the leaders so far) until ``quorum`` customers are met,
        instead of following the clock event by event (``_reached``, a Python loop)."""
        k = self.quorum
        lead = sorted(self.leaders.items(), key=lambda kv: -kv[1])
        top: dict[str, float] = {}
        j = 0
        tsl = ts.tolist()
        for i in np.argsort(-ts, kind="stable").tolist():
            while j < len(lead) and lead[j][1] >= tsl[i] and len(top) < k:
                top.setdefault(*lead[j])
                j += 1
            if len(top) >= k:
                break
            top.setdefault(customers[i], tsl[i])
        for c, t in lead[j:]:
            if len(top) >= k:
                break
            top.setdefault(c, t)
        clock = max(min(top.values()) if len(top) >= k else -np.inf, self.max_event_time)
        if (ends <= clock - self.allowed_lateness_s).any():
            return None
        return clock, top

    def _reached(self, ts: np.ndarray, customers) -> np.ndarray:
        """Per event, the time ``quorum`` distinct customers have reached with it (-inf where that
        did not move): the quorum-th latest of the customers' latest event times. Only an event
        later than that time can move it, so the loop runs over those alone."""
        k = self.quorum
        if k == 1:
            return ts
        out = np.full(len(ts), -np.inf)
        lead = self.leaders
        full = len(lead) >= k
        low = min(lead, key=lead.get) if full else None  # the leader whose time is the clock's
        floor = lead[low] if full else -np.inf
        tsl = ts.tolist()
        for i in np.flatnonzero(ts > floor).tolist():
            t, c = tsl[i], customers[i]
            held = lead.get(c)
            if held is not None:
                if t <= held:
                    continue
                lead[c] = t
                if c != low:  # a leader above the clock moved up: the clock stays
                    continue
            elif not full:
                lead[c] = t
                full = len(lead) >= k
                if not full:
                    continue
            elif t > floor:
                del lead[low]
                lead[c] = t
            else:
                continue
            low = min(lead, key=lead.get)
            floor = out[i] = lead[low]
        return out

    def _add_window(self, w: int, tx: TransactionColumns, sel: np.ndarray, code: np.ndarray) -> None:
        table = self._open.get(w)
        if table is None:
            table = self._open[w] = _Table(self.n_categories)
        keys = tx.key[sel]
        has_id = keys != 0
        dup = np.zeros(len(sel), bool)
        if has_id.any():
            ided = np.flatnonzero(has_id)
            _, first = np.unique(keys[ided], return_index=True)
            repeat = np.ones(len(ided), bool)
            repeat[first] = False
            dup[ided] = repeat | table.seen(keys[ided])
        code[sel[dup]] = DUPLICATE
        sel, keys = sel[~dup], keys[~dup]
        if not len(sel):
            return
        rows = table.rows_of([tx.customer_id[i] for i in sel.tolist()])
        data = table.data
        np.add.at(data, (rows, 2 + tx.category[sel]), tx.amount_eur[sel])
        np.add.at(data[:, 0], rows, 1.0)
        income = tx.income_eur[sel]
        known = ~np.isnan(income)
        if known.any():  # the latest income an event of the batch carried, per customer
            r, v = rows[known][::-1], income[known][::-1]
            last_rows, first = np.unique(r, return_index=True)
            data[last_rows, 1] = v[first]
        table.dirty.update(rows.tolist())
        keys = keys[keys != 0]
        if len(keys):
            table.keys.update(keys.tolist())
            table.new_keys.append(keys)

    def advance_to(self, t: float) -> None:
        """Move the clock to ``t`` (never back): a quiet stream's wall clock, where no event
        will; a later event is then late if its window ended before ``t`` minus the lateness."""
        self.max_event_time = max(self.max_event_time, float(t))

    def next_end(self) -> float:
        """End of the oldest open window (inf if none): the clock must pass it plus the lateness to close it."""
        return self.spec.end(min(self._open)) if self._open else float("inf")

    def poll(self) -> list[ClosedWindow]:
        """Close and return every window whose end the watermark has passed, oldest first."""
        wm = self.watermark
        due = sorted(i for i in self._open if self.spec.end(i) <= wm)
        return [w for i in due for w in self._close(i)]

    def flush(self) -> list[ClosedWindow]:
        """Close everything (end of a finite stream)."""
        return [w for i in sorted(self._open) for w in self._close(i)]

    def _close(self, idx: int) -> list[ClosedWindow]:
        start, end = self.spec.start(idx), self.spec.end(idx)
        table = self._open.pop(idx)
        self._closed.append(idx)
        data = table.data[: len(table)]
        spend, counts, income = data[:, 2:], data[:, 0].astype(np.int64).tolist(), data[:, 1].tolist()
        return [
            ClosedWindow(cid, idx, start, end, spend[r], counts[r], None if income[r] != income[r] else income[r])
            for r, cid in enumerate(table.customers)
        ]

    # --- checkpointing: what a store needs to persist, and how to come back --------

    def checkpoint_delta(self) -> tuple[list[WindowRows], list[int]]:
        """Rows changed and keys counted per open window since the last call, and windows closed."""
        deltas = []
        for idx, t in self._open.items():
            if not t.dirty and not t.new_keys:
                continue
            rows = np.fromiter(sorted(t.dirty), np.int64, len(t.dirty))
            keys = np.concatenate(t.new_keys) if t.new_keys else np.zeros(0, np.uint64)
            deltas.append(WindowRows(idx, [t.customers[r] for r in rows.tolist()], t.data[rows], keys))
            t.dirty, t.new_keys = set(), []
        closed, self._closed = self._closed, []
        return deltas, closed

    def restore(
        self, windows: Iterable[WindowRows], max_event_time: float, leaders: dict[str, float] | None = None
    ) -> None:
        """Rebuild from a checkpoint: the open windows, the event time the watermark was at, and
        the customers whose latest events the clock follows."""
        self.leaders = dict(leaders or {})
        for snap in windows:
            table = self._open.setdefault(snap.index, _Table(self.n_categories, max(64, len(snap.customers))))
            rows = table.rows_of(list(snap.customers))
            table.data[rows] = snap.records
            table.keys.update(snap.keys.tolist())
        self.max_event_time = max(self.max_event_time, max_event_time)
