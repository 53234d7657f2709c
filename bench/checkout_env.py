"""Run another checkout's code under this venv: an environment whose processes import it.

The editable install maps ``segstream.models``, ``.state``, ``.producers`` and ``.stream_app``
to the tree it was installed from. A ``sitecustomize`` on ``PYTHONPATH`` maps them to the
checkout named in ``SEGSTREAM_BENCH_TREE`` as each interpreter starts, so the worker's core
process (started by multiprocessing, not by us) runs the same checkout as its parent.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

_SITE = """
import os
tree = os.environ.get("SEGSTREAM_BENCH_TREE")
if tree:
    import importlib.util, sys
    sys.path.insert(0, tree)
    for sub in ("models", "state", "producers", "stream_app"):
        spec = importlib.util.spec_from_file_location(
            "segstream." + sub, f"{tree}/{sub}/__init__.py", submodule_search_locations=[f"{tree}/{sub}"]
        )
        sys.modules[spec.name] = mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
"""


@functools.cache
def checkout_env(tree: Path) -> dict[str, str]:
    """Environment variables that make a Python process (and its children) run ``tree``'s code
    (one site folder per tree and run, however many processes use it)."""
    site = Path(tempfile.mkdtemp(prefix="segstream-bench-site-"))
    (site / "sitecustomize.py").write_text(_SITE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"SEGSTREAM_BENCH_TREE": str(tree.resolve()), "PYTHONPATH": path}
