"""Bearer tokens for the tests (contracts.md, Security, HTTP): every endpoint but the open ones
needs one. The token is signed by the local issuer of the credentials directory the services
verify against (`CREDIT_CREDENTIALS_DIR`, else `.local/credentials`; made on first use)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from credit_common.security import tokens

ROOT = Path(__file__).resolve().parents[2]


def credentials_dir() -> Path:
    """Where the services of a test look for `jwks.json` (read when asked, so a test may set
    `CREDIT_CREDENTIALS_DIR` first)."""
    return Path(os.environ.get("CREDIT_CREDENTIALS_DIR") or ROOT / ".local" / "credentials")


def auth_headers(
    principal: str = "operator:local", scopes: str = "internal ops", ttl: timedelta = timedelta(hours=12)
) -> dict[str, str]:
    """`{"Authorization": "Bearer <token>"}` for `principal` with `scopes`."""
    token = tokens.issue(principal, scopes, ttl, credentials_dir())
    return {"Authorization": f"Bearer {token}"}
