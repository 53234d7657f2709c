"""State-store adapters for the core's :class:`~segstream.core.ports.StateStore`."""
