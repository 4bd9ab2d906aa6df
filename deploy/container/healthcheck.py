"""Container health probe: `python healthcheck.py [PATH]` exits 0 when the service in this container
answers 200 on PATH (default `/health/live`; deploy/compose.yaml asks `/health/ready`).

The port is `CREDIT_HTTP_PORT`; without it the contract's default ports are tried in turn (one
container runs one service, so the one that answers is it). Standard library only: it runs every
few seconds and must not pay for importing the platform."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

#: The contract's default ports (credit_common.settings.SERVICE_PORTS; a unit test keeps them equal).
DEFAULT_PORTS = (8101, 8102, 8103, 8104, 8105)
TIMEOUT_S = 3.0


def answers(port: int, path: str) -> bool:
    """True when http://127.0.0.1:PORT/PATH answers 200 within the timeout."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/health/live"
    configured = os.environ.get("CREDIT_HTTP_PORT", "").strip()
    ports = (int(configured),) if configured else DEFAULT_PORTS
    return 0 if any(answers(port, path) for port in ports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
