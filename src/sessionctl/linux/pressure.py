"""Pressure stall information (PSI): /proc/pressure/memory or a cgroup's memory.pressure.

Each line reads ``some avg10=1.23 avg60=0.50 avg300=0.10 total=12345``: the share of time
(percent) in which some (or all: ``full``) non-idle tasks were stalled waiting for
memory, averaged over 10, 60 and 300 seconds.
"""

from __future__ import annotations

PROC_PRESSURE_MEMORY = "/proc/pressure/memory"


def parse_pressure(text: str) -> dict[str, float]:
    """``{"some avg10": 1.23, "some avg60": ..., "full avg10": ...}`` from PSI text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for item in rest.split():
            key, _, value = item.partition("=")
            if key.startswith("avg"):
                out[f"{kind} {key}"] = float(value)
    return out


def read_pressure(path: str = PROC_PRESSURE_MEMORY) -> dict[str, float]:
    """The averages in a PSI file; OSError if it cannot be read (no PSI, no such cgroup),
    ValueError if it is not PSI text."""
    with open(path, encoding="ascii") as f:
        values = parse_pressure(f.read(4096))
    if not values:
        raise ValueError(f"{path} holds no pressure averages")
    return values
