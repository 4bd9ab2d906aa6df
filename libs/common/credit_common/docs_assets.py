"""The API documentation where the platform runs: Swagger UI (`/docs`) and the AsyncAPI viewer
(`/docs/asyncapi`) load their scripts and styles from the service itself (`/docs/assets/...`), not
from a public CDN, so they work on an isolated government network and on a machine without
internet.

The assets are pinned npm packages (`deploy/docs-assets.json`: name, version, the registry's
sha512 integrity, the files taken). `make deps` fetches them once into `.local/docs-assets`
(`python -m credit_common.docs_assets`) straight from the npm registry (`NPM_CONFIG_REGISTRY`
or registry.npmjs.org), and refuses a tarball whose digest is not the pinned one; the container
image does the same at build time. A service without them still serves the documents
(`/openapi.json`, `/docs/asyncapi.json`); its pages then say what to run."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "deploy" / "docs-assets.json"
DEFAULT_DIR = ROOT / ".local" / "docs-assets"
PREFIX = "/docs/assets"
SWAGGER_JS = f"{PREFIX}/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{PREFIX}/swagger-ui/swagger-ui.css"
SWAGGER_ICON = f"{PREFIX}/swagger-ui/favicon-32x32.png"
ASYNCAPI_JS = f"{PREFIX}/asyncapi/index.js"
ASYNCAPI_CSS = f"{PREFIX}/asyncapi/default.min.css"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # "sha512-<base64>", as the registry gives it
    files: dict[str, str]  # path in the package -> path under the assets directory

    @property
    def tarball(self) -> str:
        registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/").rstrip("/")
        return f"{registry}/{self.name}/-/{self.name.rpartition('/')[2]}-{self.version}.tgz"


def packages(lock: Path = LOCK) -> list[Package]:
    doc: dict[str, Any] = json.loads(lock.read_text())
    return [Package(p["name"], p["version"], p["integrity"], dict(p["files"])) for p in doc["packages"]]


def assets_dir() -> Path:
    return Path(os.environ.get("CREDIT_DOCS_ASSETS_DIR") or DEFAULT_DIR)


def _marker(dest: Path, p: Package) -> Path:
    return dest / ".fetched" / f"{p.name.replace('/', '__')}@{p.version}"


def present(dest: Path | None = None) -> bool:
    """Whether every pinned package's files are in `dest`."""
    dest = dest or assets_dir()
    return all(_marker(dest, p).exists() for p in packages())


def check_integrity(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise ValueError(f"unsupported integrity {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise ValueError(f"integrity mismatch: got sha512-{actual}, pinned {integrity}")


def unpack(data: bytes, p: Package, dest: Path) -> None:
    """The package's pinned files, from its tarball (paths under `package/`), into `dest`."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for inside, target in p.files.items():
            try:
                member = tar.extractfile(f"package/{inside}")
            except KeyError:
                member = None
            if member is None:
                raise ValueError(f"{p.name}@{p.version} has no file {inside}")
            out = dest / target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(member.read())
    marker = _marker(dest, p)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(p.integrity + "\n")


def fetch(dest: Path | None = None) -> list[str]:
    """Fetch what is missing; the packages fetched (`name@version`)."""
    import httpx

    dest = dest or assets_dir()
    done = []
    for p in packages():
        if _marker(dest, p).exists():
            continue
        response = httpx.get(p.tarball, follow_redirects=True, timeout=120.0)
        response.raise_for_status()
        check_integrity(response.content, p.integrity)
        unpack(response.content, p, dest)
        done.append(f"{p.name}@{p.version}")
    return done


def missing_page(title: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>The documentation's assets are not installed on this host: run "
        "<code>make deps</code> (or <code>python -m credit_common.docs_assets</code>). The documents "
        'themselves: <a href="/openapi.json">/openapi.json</a>, '
        '<a href="/docs/asyncapi.json">/docs/asyncapi.json</a>.</p></body></html>'
    )


def main() -> None:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else assets_dir()
    try:
        done = fetch(dest)
    except Exception as exc:  # a clear line, not a traceback, for make deps
        print(f"[docs-assets] could not fetch the documentation assets: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(f"[docs-assets] {', '.join(done) if done else 'up to date'} in {dest}")


if __name__ == "__main__":
    main()
