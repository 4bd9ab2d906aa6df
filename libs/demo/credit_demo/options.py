"""What one demo run is asked to do (the command line's options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Options:
    rate: float
    minutes: float
    seed: int
    wait: bool = True
    wait_timeout: float = 300.0
    ready_timeout: float = 120.0
    settle: float = 5.0
    malformed: float = 0.005
    catalog: Path | None = None
    run_dir: Path = Path(".local/run")

    @property
    def total(self) -> int:
        return max(1, round(self.rate * self.minutes * 60))
