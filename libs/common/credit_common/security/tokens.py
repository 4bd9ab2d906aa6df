"""Bearer tokens for the HTTP API (contracts.md, Security, HTTP): JWTs (RFC 7519) signed with
EdDSA or RS256 and verified against a JWKS.

The local stack is its own small issuer: an Ed25519 key in the credentials directory
(`issuer.json`, mode 0600, the private JWK) and its public half in `jwks.json` beside it, made
once by `ensure_issuer` and kept. `issue` signs a token for a principal (`sub`) with its scopes
(`scope`, space-separated: `internal`, `ops`, or none); `provision_tokens` writes one into each
principal's credentials file (`http_token`). In production the organisation's OpenID Connect
provider issues the tokens: point `CREDIT_JWKS_URL` at its JWKS (`.../protocol/openid-connect/certs`
for Keycloak) and set `CREDIT_JWT_ISSUER` and `CREDIT_JWT_AUDIENCE` to what it writes in `iss`
and `aud`.

`TokenVerifier` checks the signature (the key named by the token's `kid`, with the one algorithm
that key is for), `exp`, `iat`, `iss` and `aud`, and answers a `Principal(sub, scopes)`. A verified
token is remembered (at most a minute, never past its `exp`), so a client that sends the same
token a thousand times a second pays for one signature check."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from credit_common.security import credentials
from credit_common.settings import SERVICE_PORTS, Settings, get_settings

ISSUER_FILE = "issuer.json"
JWKS_FILE = "jwks.json"
#: The signature algorithms a token may use (never `none`, never an HMAC a public key could fake).
ALGORITHMS = ("EdDSA", "RS256")
SCOPE_INTERNAL = "internal"
SCOPE_OPS = "ops"
#: Tokens of the local stack live this long (re-issued by `credit-keys provision` when older).
LOCAL_TOKEN_TTL = timedelta(days=30)
#: A token due to expire within this is re-issued by `provision_tokens`.
RENEW_BEFORE = timedelta(days=1)
LEEWAY_S = 30.0  # clock skew allowed on exp and iat


class TokenError(Exception):
    """A token that cannot be accepted: malformed, unsigned by a known key, expired, or for
    another issuer or audience."""


def default_scopes(principal: str) -> str:
    """What the local stack grants `principal`: operators and the stack itself everything,
    services the internal reads, everybody else (units, the portal, subscribers) no scope: a unit
    reads its own requests, designations and inbox only."""
    if principal == "admin" or principal.startswith("operator:"):
        return f"{SCOPE_INTERNAL} {SCOPE_OPS}"
    if principal.startswith("service:"):
        return SCOPE_INTERNAL
    return ""


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for, and what it may do."""

    sub: str
    scopes: frozenset[str] = frozenset()
    expires_at: float | None = None

    @property
    def unit(self) -> str | None:
        """The unit code of a `unit:<code>` principal, else None."""
        return self.sub[5:] if self.sub.startswith("unit:") and len(self.sub) > 5 else None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _write_secret(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `path` atomically with `mode` (the credentials files' pattern)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)  # whatever the umask took away
    os.replace(tmp, path)


# ---------------------------------------------------------------- the local issuer


@dataclass(frozen=True)
class LocalIssuer:
    """The local stack's signing key (Ed25519) and its key id (the RFC 7638 thumbprint)."""

    kid: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> LocalIssuer:
        key = Ed25519PrivateKey.generate()
        return cls(thumbprint(_public_jwk(key)), key)

    def public_jwk(self) -> dict[str, Any]:
        return {**_public_jwk(self.key), "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def private_jwk(self) -> dict[str, Any]:
        doc: dict[str, Any] = OKPAlgorithm.to_jwk(self.key, as_dict=True)
        return {**doc, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def issue(
        self,
        principal: str,
        scopes: str | Iterable[str],
        ttl: timedelta,
        issuer: str,
        audience: str,
        now: float | None = None,
    ) -> str:
        """A compact JWT for `principal` with `scopes`, valid for `ttl` from `now`."""
        issued = int(time.time() if now is None else now)
        scope = scopes if isinstance(scopes, str) else " ".join(scopes)
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": principal,
            "scope": " ".join(scope.split()),
            "iat": issued,
            "exp": issued + int(ttl.total_seconds()),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "JWT"})


def _public_jwk(key: Ed25519PrivateKey) -> dict[str, Any]:
    doc: dict[str, Any] = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": doc["kty"], "crv": doc["crv"], "x": doc["x"]}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an OKP public key: its key id."""
    canonical = orjson.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, option=orjson.OPT_SORT_KEYS)
    return _b64url(hashlib.sha256(canonical).digest())


def _dir(directory: Path | None) -> Path:
    return directory or credentials.default_dir()


def load_issuer(directory: Path | None = None) -> LocalIssuer | None:
    """The issuer kept in `directory`, or None when there is none yet."""
    path = _dir(directory) / ISSUER_FILE
    if not path.exists():
        return None
    doc = orjson.loads(path.read_bytes())
    key = OKPAlgorithm.from_jwk(doc["private_jwk"])
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenError(f"{path}: not an Ed25519 private key")
    return LocalIssuer(str(doc["kid"]), key)


def ensure_issuer(directory: Path | None = None) -> LocalIssuer:
    """The local issuer of `directory`, made on first use (idempotent: an existing key is kept;
    `jwks.json` is written again when it does not hold the key)."""
    where = _dir(directory)
    issuer = load_issuer(where)
    if issuer is None:
        issuer = LocalIssuer.generate()
        doc = {"kid": issuer.kid, "alg": "EdDSA", "private_jwk": issuer.private_jwk()}
        _write_secret(where / ISSUER_FILE, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    jwks_path = where / JWKS_FILE
    try:
        current = orjson.loads(jwks_path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        current = None
    if current != issuer.jwks():
        _write_secret(jwks_path, orjson.dumps(issuer.jwks(), option=orjson.OPT_INDENT_2), mode=0o644)
    return issuer


def issue(
    principal: str,
    scopes: str | Iterable[str] | None = None,
    ttl: timedelta = LOCAL_TOKEN_TTL,
    directory: Path | None = None,
    *,
    settings: Settings | None = None,
) -> str:
    """A token for `principal` signed by the local issuer of `directory` (made if needed), for
    the issuer and audience of `settings`; `scopes` default to `default_scopes(principal)`."""
    s = settings or get_settings()
    granted = default_scopes(principal) if scopes is None else scopes
    return ensure_issuer(directory).issue(principal, granted, ttl, s.credit_jwt_issuer, s.credit_jwt_audience)


def _still_good(token: object, issuer: LocalIssuer, scopes: str, s: Settings) -> bool:
    """Is `token` one of this issuer's, for these scopes, issuer and audience, not due soon?"""
    if not isinstance(token, str):
        return False
    try:
        claims = jwt.decode(
            token,
            issuer.key.public_key(),
            algorithms=["EdDSA"],
            audience=s.credit_jwt_audience,
            issuer=s.credit_jwt_issuer,
        )
    except jwt.PyJWTError:
        return False
    due = float(claims.get("exp", 0)) - RENEW_BEFORE.total_seconds()
    return jwt.get_unverified_header(token).get("kid") == issuer.kid and (
        sorted(str(claims.get("scope", "")).split()) == sorted(scopes.split()) and due > time.time()
    )


def provision_tokens(
    principals: Iterable[str],
    directory: Path | None = None,
    ttl: timedelta = LOCAL_TOKEN_TTL,
    *,
    settings: Settings | None = None,
) -> list[str]:
    """Write `http_token` into the credentials file of each principal (its other keys kept): a
    token with `default_scopes(principal)`, re-issued when missing, due to expire within a day,
    issued by another key or for other scopes. Returns the principals that got a new token."""
    s = settings or get_settings()
    issuer = ensure_issuer(directory)
    renewed: list[str] = []
    for principal in principals:
        scopes = default_scopes(principal)
        doc = credentials.read(principal, directory) or {"principal": principal}
        if _still_good(doc.get("http_token"), issuer, scopes, s):
            continue
        doc["http_token"] = issuer.issue(principal, scopes, ttl, s.credit_jwt_issuer, s.credit_jwt_audience)
        credentials.write(doc, directory)
        renewed.append(principal)
    return renewed


def write_token_file(path: Path, token: str, mode: int = 0o600) -> None:
    """A bare token in a file of its own (Prometheus' `authorization.credentials_file`)."""
    _write_secret(path, token.encode("ascii") + b"\n", mode)


# ---------------------------------------------------------------- verification


class KeySource(Protocol):
    """Where the verifier finds the public key a token names."""

    #: True when `key_for` may wait on the network (the caller then runs it in a thread).
    may_block: bool

    def key_for(self, kid: str | None) -> jwt.PyJWK: ...


class JwksFile:
    """A JWKS read from a file, read again when the file changes (a new local issuer)."""

    may_block = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._lock = threading.Lock()

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            self._stamp, self._keys = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                keys = jwt.PyJWKSet.from_json(self.path.read_text(encoding="utf-8")).keys
            except (OSError, ValueError, jwt.PyJWTError):
                keys = []
            self._keys = {k.key_id: k for k in keys}
            self._stamp = stamp

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        self._load()
        if not self._keys:
            raise TokenError(f"no keys to verify with ({self.path} is missing or empty)")
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid)
        if found is None:
            raise TokenError(f"unknown key id {kid!r}")
        return found


class JwksUrl:
    """A JWKS fetched from an URL (an OpenID Connect provider's `jwks_uri`), cached five minutes
    and fetched again at most every 30 s when a token names a key it does not hold."""

    may_block = True

    def __init__(self, url: str, lifespan_s: float = 300.0, timeout_s: float = 10.0) -> None:
        self.client = jwt.PyJWKClient(url, cache_keys=True, lifespan=lifespan_s, timeout=int(timeout_s))

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        try:
            if kid is None:
                keys = self.client.get_signing_keys()
                if len(keys) != 1:
                    raise TokenError("the token names no key id")
                return keys[0]
            return self.client.get_signing_key(kid)
        except jwt.PyJWKClientError as exc:
            raise TokenError(str(exc)) from exc


@dataclass
class TokenVerifier:
    """Verifies bearer tokens against `keys` for `issuer` and `audience`."""

    keys: KeySource
    issuer: str
    audience: str
    leeway_s: float = LEEWAY_S
    cache_s: float = 60.0
    cache_max: int = 4096
    _cache: dict[str, tuple[Principal, float]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, directory: Path | None = None) -> TokenVerifier:
        """`CREDIT_JWKS_URL` if set, else `CREDIT_JWKS_FILE`, else `<credentials dir>/jwks.json`."""
        s = settings or get_settings()
        keys: KeySource
        if s.credit_jwks_url:
            keys = JwksUrl(s.credit_jwks_url)
        else:
            keys = JwksFile(Path(s.credit_jwks_file) if s.credit_jwks_file else _dir(directory) / JWKS_FILE)
        return cls(keys, s.credit_jwt_issuer, s.credit_jwt_audience)

    @property
    def may_block(self) -> bool:
        return self.keys.may_block

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified within the last `cache_s`, still unexpired."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        if hit[1] <= time.time():
            self._cache.pop(token, None)
            return None
        return hit[0]

    def verify(self, token: str) -> Principal:
        """The principal `token` speaks for; TokenError when it cannot be accepted."""
        found = self.cached(token)
        if found is not None:
            return found
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            key = self.keys.key_for(kid if isinstance(kid, str) else None)
            algorithm = key.algorithm_name
            if algorithm not in ALGORITHMS:
                raise TokenError(f"key {key.key_id!r} is for {algorithm}, not an accepted algorithm")
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc) or type(exc).__name__) from exc
        principal = Principal(str(claims["sub"]), _scopes(claims), float(claims["exp"]))
        if len(self._cache) >= self.cache_max:
            self._cache.clear()
        self._cache[token] = (principal, min(float(claims["exp"]), time.time() + self.cache_s))
        return principal


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (RFC 8693: space-separated), or `scp` as a list (some providers write that)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(str(s) for s in scp)
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()


# ---------------------------------------------------------------- what the local stack provisions

#: Principals of the local stack that hold a token beside the catalogue's units and the portal.
LOCAL_PRINCIPALS = ("operator:local", "subscriber:local", "admin", *(f"service:{name}" for name in SERVICE_PORTS))
#: Prometheus scrapes `/metrics` with this token (scope `ops` only), from this file of the
#: credentials directory (deploy/prometheus/prometheus.local.yml).
PROMETHEUS_PRINCIPAL = "operator:prometheus"
PROMETHEUS_TOKEN_FILE = "prometheus.token"


def provision_token_file(
    path: Path,
    principal: str,
    scopes: str,
    directory: Path | None = None,
    ttl: timedelta = LOCAL_TOKEN_TTL,
    mode: int = 0o600,
    *,
    settings: Settings | None = None,
) -> bool:
    """Keep a bare token for `principal` with `scopes` in `path` (re-issued as `provision_tokens`
    does). True when a new one was written."""
    s = settings or get_settings()
    issuer = ensure_issuer(directory)
    try:
        current: str | None = path.read_text(encoding="ascii").strip()
    except OSError:
        current = None
    if _still_good(current, issuer, scopes, s):
        return False
    write_token_file(path, issuer.issue(principal, scopes, ttl, s.credit_jwt_issuer, s.credit_jwt_audience), mode)
    return True
