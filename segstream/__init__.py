"""segstream: streaming micro-segmentation of bank customers by spending personality.

The transport-free core lives in :mod:`segstream.core`; Kafka/Faust, Redis and the
torch models are adapters in the sibling top-level packages.
"""

__version__ = "0.1.0"
