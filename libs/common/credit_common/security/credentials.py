"""Local credentials (contracts.md, Security): one file per principal,
`<dir>/<principal with ":" as "-">.json`, mode 0600, holding what a client of that principal needs:
`{principal, kafka?, http_token?, signing?: {kid, private_key}}` (`signing` for units and the
portal). The local stack writes them; departments' scripts, the demo, the tests and the benchmarks
read them. Nothing in them is ever committed (`.local/` is ignored)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from credit_common.contracts.reference import KeyRecord
from credit_common.security.signing import Signer, principal_of

#: Local keys verify from this time on: a platform whose clock was set back (`CREDIT_NOW`, in
#: demos and tests of deadlines) still accepts what its departments sign.
LOCAL_KEYS_FROM = datetime(2000, 1, 1, tzinfo=UTC)


def default_dir() -> Path:
    """`CREDIT_CREDENTIALS_DIR`, else `.local/credentials` under the working directory."""
    return Path(os.environ.get("CREDIT_CREDENTIALS_DIR") or Path(".local") / "credentials")


def file_of(principal: str, directory: Path | None = None) -> Path:
    return (directory or default_dir()) / (principal.replace(":", "-") + ".json")


def read(principal: str, directory: Path | None = None) -> dict[str, Any] | None:
    path = file_of(principal, directory)
    return orjson.loads(path.read_bytes()) if path.exists() else None


def write(doc: dict[str, Any], directory: Path | None = None) -> Path:
    """Write a principal's file atomically, readable by its owner only."""
    path = file_of(str(doc["principal"]), directory)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(tmp, path)
    return path


def signer_of(doc: dict[str, Any]) -> Signer | None:
    signing = doc.get("signing")
    if not signing:
        return None
    return Signer.from_seed(str(signing["kid"]), str(doc["principal"]), str(signing["private_key"]))


def signer(principal: str, directory: Path | None = None) -> Signer | None:
    """The signing key the credentials file of `principal` holds, or None."""
    doc = read(principal, directory)
    return signer_of(doc) if doc else None


def new_kid(principal: str) -> str:
    """A fresh key id: the principal, the day and a random tail (`unit-110000-SAT-20261203-9f2c`)."""
    return f"{principal.replace(':', '-')}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"


def provision(principals: Iterable[str], directory: Path | None = None) -> list[KeyRecord]:
    """Give every principal of `principals` a signing key if its file has none (idempotent: an
    existing key is kept), and return the `key` records to publish for all of them."""
    records: list[KeyRecord] = []
    for principal in principals:
        doc = read(principal, directory) or {"principal": principal}
        key = signer_of(doc)
        if key is None:
            key = Signer.generate(new_kid(principal), principal)
            doc["signing"] = {"kid": key.kid, "private_key": key.seed}
            write(doc, directory)
        records.append(key.record(LOCAL_KEYS_FROM))
    return records


class Signers:
    """Signs envelopes with the key of their source's principal (`unit/<code>`, `portal`), read
    from a credentials directory: how the demo, the benchmarks and the tests send as departments."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_dir()
        self._found: dict[str, Signer | None] = {}

    def for_source(self, source: str) -> Signer | None:
        if source not in self._found:
            principal = principal_of(source)
            self._found[source] = signer(principal, self.directory) if principal else None
        return self._found[source]

    def sign(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """`envelope` signed by its source's key; as it is when signed already or no key exists."""
        source = envelope.get("source")
        if "signature" in envelope or not isinstance(source, str):
            return envelope
        key = self.for_source(source)
        return key.sign(envelope) if key is not None else envelope

    def sign_bytes(self, value: bytes) -> bytes:
        """A serialised envelope, signed; bytes that are not an envelope as they are."""
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if not isinstance(doc, dict) or not {"specversion", "id", "source", "type"} <= doc.keys():
            return value
        signed = self.sign(doc)
        return value if signed is doc else orjson.dumps(signed)

    def forget(self) -> None:
        """Read the files again on next use (after keys were made or rotated)."""
        self._found.clear()


def service_env(name: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of service `name`'s process: `environ` (default: this process's) acting as
    principal `service:<name>` from its credentials file, whatever Kafka user `environ` held."""
    env = dict(os.environ if environ is None else environ)
    # Nor the caller's database login (the stack's admin): the caller gives the service its runtime
    # role's (`credit_common.db.provision`).
    for var in (
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SECURITY_PROTOCOL",
        "CREDIT_TOKEN",
        "DATABASE_URL",
    ):
        env.pop(var, None)
    env["CREDIT_PRINCIPAL"] = f"service:{name}"
    env["CREDIT_CREDENTIALS_DIR"] = str(default_dir().resolve())
    return env


def shell_settings(principal: str, directory: Path | None = None) -> list[str]:
    """`export` lines for a shell acting as `principal` (`deploy/stack.sh env [PRINCIPAL]`): the
    bootstrap servers of the environment, the principal's Kafka credentials, its bearer token for
    the HTTP APIs, and where its signing key is; the database's (admin) login for `admin` only."""
    import shlex

    doc = read(principal, directory)
    if doc is None:
        raise LookupError(f"no credentials file for {principal} in {directory or default_dir()}")
    where = (directory or default_dir()).resolve()
    values: dict[str, str] = {
        "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        # The database's admin login is the stack's alone: no other principal's shell gets it.
        "DATABASE_URL": os.environ.get("DATABASE_URL", "") if principal == "admin" else "",
        "CREDIT_PRINCIPAL": principal,
        "CREDIT_CREDENTIALS_DIR": str(where),
    }
    kafka = doc.get("kafka") or {}
    if kafka:
        values |= {
            "KAFKA_SECURITY_PROTOCOL": kafka["security_protocol"],
            "KAFKA_SASL_MECHANISM": kafka["sasl_mechanism"],
            "KAFKA_SASL_USERNAME": kafka["username"],
            "KAFKA_SASL_PASSWORD": kafka["password"],
        }
    if doc.get("http_token"):
        values["CREDIT_TOKEN"] = str(doc["http_token"])
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items() if value]


def main() -> None:
    """`python -m credit_common.security.credentials env PRINCIPAL`."""
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "env":
        raise SystemExit("usage: python -m credit_common.security.credentials env PRINCIPAL")
    try:
        print("\n".join(shell_settings(sys.argv[2])))
    except LookupError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    main()
