"""A StatsD listener for the metrics tests: a UDP socket on a free loopback port, and the parse of what arrives."""

from __future__ import annotations

import socket
import threading
from collections import defaultdict


class StatsdListener:
    """A UDP socket on a free loopback port that keeps every StatsD line it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines += data.decode(errors="replace").splitlines()

    def stop(self) -> None:
        """Stop listening, after taking every datagram already in the socket's buffer."""
        self._stop.set()
        self._thread.join()
        self.sock.setblocking(False)
        while True:
            try:
                self.lines += self.sock.recv(65535).decode(errors="replace").splitlines()
            except BlockingIOError:
                break
        self.sock.close()


def parse(lines: list[str], prefix: str) -> dict[str, list[tuple[dict[str, str], float, str]]]:
    """``name -> [(tags, value, kind)]`` of the lines whose name starts with ``prefix`` (InfluxDB tag style:
    ``name,key=value,...:value|kind``)."""
    found: dict[str, list[tuple[dict[str, str], float, str]]] = defaultdict(list)
    for line in lines:
        head, _, rest = line.partition(":")
        value, _, kind = rest.partition("|")
        name, *pairs = head.split(",")
        if name.startswith(prefix):
            tags = dict(pair.split("=", 1) for pair in pairs)
            found[name.removeprefix(prefix)].append((tags, float(value), kind.split("|")[0]))
    return found


def statsd_env(listener: StatsdListener) -> dict[str, str]:
    """Airflow's ``[metrics]`` settings that send StatsD, with InfluxDB-style tags, to ``listener``."""
    return {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    }
