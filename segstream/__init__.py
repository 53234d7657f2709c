"""segstream: streaming micro-segmentation of bank customers by spending personality.

The transport-free core lives in :mod:`segstream.core`; Kafka/Faust, Redis and the
torch models are adapters in the sibling top-level packages.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segstream")  # one source: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
