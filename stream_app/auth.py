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


class KeyRing:
    def __init__(self, keys: list[ApiKey]):
        self.keys = keys

    @classmethod
    def load(cls, path: Path | None, inline: str = "") -> KeyRing:
        """Keys from a file (one per line) and from ``inline`` (the same lines, ``;``-separated, for the environment)."""
        keys = []
        if path is not None:
            for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                if (k := parse_line(line, f"{path}:{n}")) is not None:
                    keys.append(k)
        for n, line in enumerate(inline.split(";"), 1):
            if (k := parse_line(line, f"SEGSTREAM_API_KEYS entry {n}")) is not None:
                keys.append(k)
        return cls(keys)

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
        for k in self.keys:  # compare with every key, in constant time each: no early exit to time
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
