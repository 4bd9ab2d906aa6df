"""The API documentation without internet: Swagger UI and the AsyncAPI viewer reference only the
service's own `/docs/assets`, served from the pinned packages; a tarball whose digest is not the
pinned one is refused; without the assets the pages say what to run."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from pathlib import Path

import httpx
import pytest
from credit_common import docs_assets
from credit_common.http.app import create_http_app, mount_asyncapi
from credit_common.http.health import HealthChecks
from credit_common.messaging.asyncapi import build_asyncapi
from prometheus_client import CollectorRegistry

from tests.support.tokens import auth_headers

EXTERNAL = re.compile(r"""(?:src|href)=["']?(https?:)?//""")


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_a_tarball_is_taken_only_with_its_pinned_digest(tmp_path: Path) -> None:
    data = _tarball({"dist/viewer.js": b"render()", "LICENSE": b"MIT"})
    package = docs_assets.Package("viewer", "1.0.0", _integrity(data), {"dist/viewer.js": "viewer/index.js"})
    docs_assets.check_integrity(data, package.integrity)
    with pytest.raises(ValueError, match="integrity mismatch"):
        docs_assets.check_integrity(data + b"tampered", package.integrity)
    docs_assets.unpack(data, package, tmp_path)
    assert (tmp_path / "viewer" / "index.js").read_bytes() == b"render()"
    missing = docs_assets.Package("viewer", "1.0.0", package.integrity, {"dist/other.js": "x.js"})
    with pytest.raises(ValueError, match=r"no file dist/other\.js"):
        docs_assets.unpack(data, missing, tmp_path)


def test_every_pinned_package_names_its_registry_tarball_and_sha512() -> None:
    for p in docs_assets.packages():
        assert p.integrity.startswith("sha512-")
        assert p.tarball.endswith(f"/{p.name}/-/{p.name.rpartition('/')[2]}-{p.version}.tgz")
        assert re.fullmatch(r"\d+\.\d+\.\d+", p.version), p  # exact, never a range


def _client(monkeypatch: pytest.MonkeyPatch, assets: Path) -> httpx.AsyncClient:
    monkeypatch.setenv("CREDIT_DOCS_ASSETS_DIR", str(assets))
    app = create_http_app("sharing", "Sharing", "The lists.", HealthChecks(), CollectorRegistry())
    html, doc = build_asyncapi("sharing", "Sharing", "127.0.0.1:9092", {}, {"credit.lists.public.v1": []})
    mount_asyncapi(app, html, doc)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=auth_headers())


async def test_both_pages_load_everything_from_the_service_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for p in docs_assets.packages():  # stand-ins for the fetched files, as `make deps` leaves them
        marker = tmp_path / ".fetched" / f"{p.name.replace('/', '__')}@{p.version}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(p.integrity)
        for target in p.files.values():
            (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / target).write_text(f"/* {target} */")
    async with _client(monkeypatch, tmp_path) as client:
        for page, assets in (
            ("/docs", (docs_assets.SWAGGER_JS, docs_assets.SWAGGER_CSS)),
            ("/docs/asyncapi", (docs_assets.ASYNCAPI_JS, docs_assets.ASYNCAPI_CSS)),
        ):
            r = await client.get(page)
            assert r.status_code == 200, page
            assert not EXTERNAL.search(r.text), (page, EXTERNAL.findall(r.text))
            for asset in assets:
                assert asset in r.text
                served = await client.get(asset)
                assert served.status_code == 200, asset
                assert served.text.startswith("/* ")
        anonymous = await client.get(docs_assets.SWAGGER_JS, headers={"Authorization": ""})
        assert anonymous.status_code == 401  # /docs/* is for operators (contracts.md, Security)


async def test_without_the_assets_the_pages_say_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with _client(monkeypatch, tmp_path / "none") as client:
        for page in ("/docs", "/docs/asyncapi"):
            r = await client.get(page)
            assert r.status_code == 503
            assert "make deps" in r.text
        assert (await client.get("/openapi.json")).status_code == 200  # the documents themselves
        assert (await client.get("/docs/asyncapi.json")).status_code == 200
