"""What aiokafka calls when the group rebalances: the ingest loop's revoke and assign."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRebalanceListener


class Rebalance(ConsumerRebalanceListener):
    def __init__(
        self, revoked: Callable[[list[int]], Awaitable[None]], assigned: Callable[[list[int]], Awaitable[None]]
    ):
        self.revoked = revoked
        self.assigned = assigned

    async def on_partitions_revoked(self, revoked) -> None:
        await self.revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned) -> None:
        await self.assigned([tp.partition for tp in assigned])
