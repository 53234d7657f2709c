"""A deadline for receiving each request: uvicorn has none.

uvicorn's keep-alive timeout covers only the idle time between requests and is reset by every
byte received, so a client that trickles a request one byte at a time, or sends half its
headers and stops, holds a connection (and a file descriptor) for as long as it likes: the
Slowloris attack. ASGI middleware cannot help, it runs only once the request is parsed. So the
HTTP protocol itself gets the deadline: armed when a connection opens or a new request's first
byte arrives, disarmed once the request (headers and body) is complete; a request not complete
in time closes the connection. Responses, however long, are not affected.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("segstream.api")


def with_request_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, with ``seconds`` to receive each request."""

    class RequestDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._arm()  # a keep-alive connection's next request begins
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
                self._disarm()  # received whole (or the connection is done with)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                log.warning("closed a connection whose request was not complete within %.0f s", seconds)
                self.transport.close()

    return RequestDeadline
