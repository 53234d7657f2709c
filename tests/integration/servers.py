"""Real Kafka and Redis servers for tests: started by the repo's scripts, stopped by PID."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port(pair: bool = False) -> int:
    """A loopback port that is free (and, with ``pair``, whose successor is free too)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair or _free(port + 1):
            return port
    raise RuntimeError("no free port pair")


@dataclass
class Server:
    script: str
    workdir: Path
    port: int
    options: tuple[str, ...] = ()  # extra server options (redis-local)

    def start(self) -> None:
        subprocess.run(
            [str(ROOT / "scripts" / self.script), "start", str(self.workdir), str(self.port), *self.options],
            check=True,
            timeout=180,
        )

    def stop(self) -> None:
        subprocess.run([str(ROOT / "scripts" / self.script), "stop", str(self.workdir)], check=False, timeout=60)

    def kill9(self) -> None:
        pid = int((self.workdir / ("kafka.pid" if self.script == "kafka-local" else "redis.pid")).read_text())
        subprocess.run(["kill", "-9", str(pid)], check=False)

    def wipe(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def redis_server(workdir: Path, *options: str) -> Server:
    return Server("redis-local", workdir, free_port(), options)


def kafka_server(workdir: Path) -> Server:
    return Server("kafka-local", workdir, free_port(pair=True))


def redis_cluster(workdir: Path) -> Server:
    """Three masters with a replica each on six consecutive loopback ports (scripts/redis-cluster-local)."""
    for _ in range(50):
        # below the ephemeral range, so that each port's cluster bus (port + 10000) exists and stays free
        first = random.randrange(20000, 29000)
        ports = range(first, first + 6)
        if all(_free(p) and _free(p + 10000) for p in ports):  # the cluster bus is port + 10000
            return Server("redis-cluster-local", workdir, first)
    raise RuntimeError("no six free ports in a row")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
