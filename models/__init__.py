"""Torch models of spending personality and the artefact the engine loads."""
