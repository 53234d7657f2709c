"""Who may read what: API keys with scopes, for the lookup API and the explorer page.

A spending-personality profile is sensitive personal data, so nothing under ``/api``
or the explorer answers without a key. Keys are random 256-bit tokens; only their
SHA-256 digests are stored (a fast hash is enough for a token with that much entropy:
there is no dictionary to try). Programs send ``X-API-Key``; browsers use HTTP Basic
(any user name, the key as password), so the explorer needs no login page of its own.

Scopes nest: ``segments`` (segment summaries) < ``customers`` (one customer's profile,
the customer map) < ``admin`` (erasing customers).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials

log = logging.getLogger("segstream.api")

SCOPES = {
    "segments": "segment summaries and sizes",
    "customers": "one customer's profile and trajectory, and the customer map (implies segments)",
    "admin": "erase a customer (implies customers)",
}
_RANK = {name: i for i, name in enumerate(SCOPES)}


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: str  # the highest scope granted; lower ones follow
    digest: str  # hex SHA-256 of the key

    def allows(self, scope: str) -> bool:
        return _RANK[self.scope] >= _RANK[scope]

    def line(self) -> str:
        return f"{self.name} {self.scope} sha256:{self.digest}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_line(line: str, where: str) -> ApiKey | None:
    """``name scope sha256:<hex>``; blank lines and ``#`` comments are skipped."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    parts = line.split()
    if len(parts) != 3 or parts[1] not in SCOPES or not parts[2].startswith("sha256:") or len(parts[2]) != 71:
        raise ValueError(f"{where}: expected 'name scope sha256:<64 hex digits>' with scope one of {list(SCOPES)}")
    return ApiKey(parts[0], parts[1], parts[2][7:].lower())


def _file_keys(path: Path) -> list[ApiKey]:
    return [k for n, line in enumerate(path.read_text().splitlines(), 1) if (k := parse_line(line, f"{path}:{n}"))]


class KeyRing:
    """The keys that may call the API. Keys from a file are read again whenever the file changes
    (checked at most once a second), so removing a line revokes its key within seconds; a file
    that cannot be read or parsed any more leaves none of its keys valid until it is fixed."""

    def __init__(self, keys: list[ApiKey], path: Path | None = None, clock=time.monotonic):
        self.keys = keys  # from the environment, and any added at run time (a development key)
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self._file_keys: list[ApiKey] = []
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._refresh()

    @classmethod
    def load(cls, path: Path | None, inline: str = "") -> KeyRing:
        """Keys from a file (one per line) and from ``inline`` (the same lines, ``;``-separated, for the environment)."""
        keys = [
            k for n, line in enumerate(inline.split(";"), 1) if (k := parse_line(line, f"SEGSTREAM_API_KEYS entry {n}"))
        ]
        ring = cls(keys, path)
        if path is not None and ring._stamp is None:
            _file_keys(Path(path))  # at start a bad file is an error, not a silent lock-out
        return ring

    @property
    def all_keys(self) -> list[ApiKey]:
        self._refresh()
        return self._file_keys + self.keys

    def _refresh(self) -> None:
        if self.path is None or self.clock() - self._checked < 1.0:
            return
        self._checked = self.clock()
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._file_keys, self._stamp = _file_keys(self.path), stamp
        except (OSError, ValueError) as err:
            if self._stamp is not None or self._file_keys:
                log.warning(
                    "API keys file %s unusable (%s): none of its keys is valid until it is fixed", self.path, err
                )
            self._file_keys, self._stamp = [], None

    @staticmethod
    def new(name: str, scope: str) -> tuple[str, ApiKey]:
        """A fresh key (shown once) and its stored form."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}: one of {list(SCOPES)}")
        if not name or any(c.isspace() or c == "#" for c in name):
            raise ValueError("a key name is one word")
        key = "sk_" + secrets.token_urlsafe(32)
        return key, ApiKey(name, scope, digest(key))

    def find(self, key: str) -> ApiKey | None:
        d = digest(key)
        found = None
        for k in self.all_keys:  # compare with every key, in constant time each: no early exit to time
            if hmac.compare_digest(k.digest, d):
                found = k
        return found


_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (segstream api-key)")
_basic = HTTPBasic(auto_error=False, realm="segstream", description="browsers: any user name, the API key as password")


def requirer(ring: KeyRing):
    """``require(scope)``: a FastAPI dependency that answers 401 without a known key, 403 without the scope."""

    def require(scope: str):
        def check(
            header: str | None = Security(_header), basic: HTTPBasicCredentials | None = Depends(_basic)
        ) -> ApiKey:
            presented = header or (basic.password if basic else None)
            if not presented:
                raise HTTPException(
                    401,
                    "credentials required: send the X-API-Key header, or HTTP Basic with the API key as password",
                    headers={"WWW-Authenticate": 'Basic realm="segstream"'},
                )
            key = ring.find(presented)
            if key is None:
                raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": 'Basic realm="segstream"'})
            if not key.allows(scope):
                raise HTTPException(403, f"the key {key.name!r} has scope {key.scope!r}; this needs {scope!r}")
            return key

        return check

    return require
