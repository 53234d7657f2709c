"""Ownership tokens for partitions, so a worker that lost a partition cannot write for it.

A worker paused past the session timeout (a long GC, SIGSTOP, a frozen VM) wakes up
still believing it owns its partitions while another worker has taken them over.
Kafka refuses its offset commits (its generation is stale), but Redis would take its
window checkpoints and state writes. So each assignment claims a partition epoch
(``INCR``), and every checkpoint and state commit names the epoch it was made under;
Redis refuses it, in the same atomic step as the write, once a newer claim exists.

A fence is a system failure, never a skip: the worker keeps nothing it read for a fenced
partition, commits no offset for it, asks Kafka (its group generation) whether it still
owns it, and either claims it again from its last checkpoint or lets it go. A claim also
names its consumer group, so a second deployment sharing the namespace is refused at its
claim instead of taking partitions over (:class:`segstream.errors.NamespaceShared`).
"""

from __future__ import annotations

from segstream.errors import SystemFailure


class Fenced(SystemFailure):
    """A newer owner has claimed these partitions: drop them and write nothing more for them."""

    def __init__(self, partitions: list[int], where: str):
        super().__init__(partitions, where)
        self.partitions = partitions
        self.where = where  # "checkpoint", "state" or "batch" (a partition let go earlier)

    def __str__(self) -> str:
        return f"partitions {self.partitions} were claimed by a newer owner (refused {self.where} write)"
