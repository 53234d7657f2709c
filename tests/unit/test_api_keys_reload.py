"""Issue 29: a key removed from the keys file stayed valid until the API restarted."""

from __future__ import annotations

import pytest

from segstream.stream_app.auth import KeyRing


def test_a_key_removed_from_the_file_is_refused_within_a_second_and_a_new_one_works(tmp_path):
    now = [0.0]
    path = tmp_path / "keys.txt"
    old, old_stored = KeyRing.new("marketing", "segments")
    new, new_stored = KeyRing.new("risk", "customers")
    path.write_text(old_stored.line() + "\n")
    ring = KeyRing([], path, clock=lambda: now[0])
    assert ring.find(old) is not None and ring.find(new) is None
    path.write_text(new_stored.line() + "\n")
    now[0] += 1.5
    assert ring.find(old) is None and ring.find(new).name == "risk"
    path.write_text("this is not a key line\n")
    now[0] += 1.5
    assert ring.find(new) is None  # a broken file revokes its keys, never keeps stale ones


def test_a_bad_keys_file_at_start_is_an_error():
    with pytest.raises((OSError, ValueError)):
        KeyRing.load(__import__("pathlib").Path("/nonexistent/keys.txt"))
