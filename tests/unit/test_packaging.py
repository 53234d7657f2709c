"""The wheel installs one import root: segstream, with the design's folders mapped under it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_has_one_import_root_and_its_data(tmp_path):
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    for name in ("segstream", "models", "state", "producers", "stream_app"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("segstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    roots = {n.split("/")[0] for n in names}
    assert {r for r in roots if not r.endswith(".dist-info")} == {"segstream"}, roots
    for must in (
        "segstream/models/artefact.py",
        "segstream/models/research/evaluation.py",
        "segstream/state/redis_store.py",
        "segstream/producers/synthetic.py",
        "segstream/stream_app/worker.py",
        "segstream/core/engine.py",
        "segstream/models/artefacts/default.pt",
        "segstream/stream_app/static/explorer.js",
        "segstream/stream_app/static/vendor/echarts.min.js",
    ):
        assert must in names, must


def test_serving_imports_no_training_or_research_library():
    """Issue 30: what the worker and the API load (artefact, network, features) imports no sklearn,
    matplotlib, river or pandas; training, evaluation and reports do."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import segstream.stream_app.processor, segstream.stream_app.api, segstream.stream_app.app\n"
        "from segstream.assembly import build_pipeline\n"
        "from segstream.config import Settings\n"
        "build_pipeline(Settings())\n"
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'river', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
