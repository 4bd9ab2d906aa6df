"""Bearer tokens (contracts.md, Security, HTTP): the local issuer, verification against a JWKS
(signature, exp, issuer, audience), RS256 keys of an OpenID Connect provider, and the tokens
the local stack writes into the credentials files."""

from __future__ import annotations

import stat
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from credit_common.security import credentials, tokens
from credit_common.security.tokens import JwksFile, Principal, TokenError, TokenVerifier
from credit_common.settings import Settings
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from jwt.algorithms import RSAAlgorithm

S = Settings()


def verifier(directory: Path, **kw: Any) -> TokenVerifier:
    return TokenVerifier(JwksFile(directory / tokens.JWKS_FILE), S.credit_jwt_issuer, S.credit_jwt_audience, **kw)


def test_the_issuer_is_made_once_kept_private_and_published(tmp_path: Path) -> None:
    first = tokens.ensure_issuer(tmp_path)
    again = tokens.ensure_issuer(tmp_path)
    assert first.kid == again.kid
    assert stat.S_IMODE((tmp_path / tokens.ISSUER_FILE).stat().st_mode) == 0o600
    jwks = orjson.loads((tmp_path / tokens.JWKS_FILE).read_bytes())
    assert [k["kid"] for k in jwks["keys"]] == [first.kid]
    assert "d" not in jwks["keys"][0]  # the public half only


def test_issue_and_verify(tmp_path: Path) -> None:
    token = tokens.issue("unit:110108-SAT", "", timedelta(hours=1), tmp_path)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == tokens.ensure_issuer(tmp_path).kid
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "aud", "sub", "scope", "iat", "exp"} <= claims.keys()
    found = verifier(tmp_path).verify(token)
    assert found.sub == "unit:110108-SAT"
    assert found.scopes == frozenset()
    assert found.unit == "110108-SAT"
    ops = verifier(tmp_path).verify(tokens.issue("operator:local", directory=tmp_path))
    assert ops.scopes == {"internal", "ops"}
    assert ops.unit is None


@pytest.mark.parametrize(
    ("issuer", "audience"), [("someone-else", S.credit_jwt_audience), (S.credit_jwt_issuer, "another-platform")]
)
def test_another_issuer_or_audience_is_refused(tmp_path: Path, issuer: str, audience: str) -> None:
    token = tokens.ensure_issuer(tmp_path).issue("operator:local", "ops", timedelta(hours=1), issuer, audience)
    with pytest.raises(TokenError):
        verifier(tmp_path).verify(token)


def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    issuer = tokens.ensure_issuer(tmp_path)
    token = issuer.issue(
        "operator:local",
        "ops",
        timedelta(minutes=5),
        S.credit_jwt_issuer,
        S.credit_jwt_audience,
        now=time.time() - 3600,
    )
    with pytest.raises(TokenError, match="expired"):
        verifier(tmp_path).verify(token)


def test_a_token_of_another_key_is_refused(tmp_path: Path) -> None:
    tokens.ensure_issuer(tmp_path / "ours")
    theirs = tokens.issue("operator:local", "internal ops", timedelta(hours=1), tmp_path / "theirs")
    with pytest.raises(TokenError, match="unknown key"):
        verifier(tmp_path / "ours").verify(theirs)
    # The same kid, another key: the signature fails.
    forged = tokens.LocalIssuer(tokens.ensure_issuer(tmp_path / "ours").kid, tokens.LocalIssuer.generate().key)
    token = forged.issue("operator:local", "ops", timedelta(hours=1), S.credit_jwt_issuer, S.credit_jwt_audience)
    with pytest.raises(TokenError):
        verifier(tmp_path / "ours").verify(token)


def test_unsigned_and_hmac_tokens_are_refused(tmp_path: Path) -> None:
    issuer = tokens.ensure_issuer(tmp_path)
    claims = {
        "iss": S.credit_jwt_issuer,
        "aud": S.credit_jwt_audience,
        "sub": "admin",
        "scope": "internal ops",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": issuer.kid})
    public_x = issuer.public_jwk()["x"].encode()
    hmac = jwt.encode(claims, public_x, algorithm="HS256", headers={"kid": issuer.kid})
    for token in (unsigned, hmac, "not.a.token", ""):
        with pytest.raises(TokenError):
            verifier(tmp_path).verify(token)


def test_an_rs256_key_of_a_jwks_is_accepted(tmp_path: Path) -> None:
    key = generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "oidc-1", "use": "sig"}
    (tmp_path / tokens.JWKS_FILE).write_bytes(orjson.dumps({"keys": [jwk]}))
    exp = int(time.time()) + 60
    claims = {
        "iss": S.credit_jwt_issuer,
        "aud": [S.credit_jwt_audience, "account"],
        "sub": "operator:alice",
        "scope": "openid ops",
        "iat": int(time.time()),
        "exp": exp,
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "oidc-1"})
    assert verifier(tmp_path).verify(token) == Principal("operator:alice", frozenset({"openid", "ops"}), float(exp))


def test_the_jwks_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    check = verifier(tmp_path)
    with pytest.raises(TokenError, match="missing"):
        check.verify(tokens.issue("operator:local", directory=tmp_path / "elsewhere"))
    token = tokens.issue("operator:local", directory=tmp_path)  # the issuer appears afterwards
    assert check.verify(token).sub == "operator:local"


def test_a_verified_token_is_remembered_no_longer_than_it_lives(tmp_path: Path) -> None:
    check = verifier(tmp_path, cache_s=0.3)
    issuer = tokens.ensure_issuer(tmp_path)
    token = issuer.issue("operator:local", "ops", timedelta(hours=1), S.credit_jwt_issuer, S.credit_jwt_audience)
    assert check.verify(token).sub == "operator:local"
    assert check.cached(token) is not None
    time.sleep(0.4)
    assert check.cached(token) is None
    # Expired a moment ago (within the leeway): accepted once, never remembered.
    late = issuer.issue(
        "operator:local", "ops", timedelta(seconds=10), S.credit_jwt_issuer, S.credit_jwt_audience, now=time.time() - 15
    )
    assert check.verify(late).sub == "operator:local"
    assert check.cached(late) is None


def test_default_scopes() -> None:
    assert tokens.default_scopes("operator:local") == "internal ops"
    assert tokens.default_scopes("admin") == "internal ops"
    assert tokens.default_scopes("service:sharing") == "internal"
    for nobody in ("unit:110108-SAT", "portal", "subscriber:local", "reference"):
        assert tokens.default_scopes(nobody) == ""


def test_provision_writes_tokens_keeps_other_keys_and_renews_only_what_needs_it(tmp_path: Path) -> None:
    credentials.write({"principal": "unit:110108-SAT", "signing": {"kid": "k", "private_key": "x"}}, tmp_path)
    principals = ["unit:110108-SAT", "operator:local", "service:sharing"]
    assert tokens.provision_tokens(principals, tmp_path) == principals
    unit = credentials.read("unit:110108-SAT", tmp_path)
    assert unit is not None
    assert unit["signing"] == {"kid": "k", "private_key": "x"}
    check = verifier(tmp_path)
    assert check.verify(unit["http_token"]).scopes == frozenset()
    op = credentials.read("operator:local", tmp_path)
    assert op is not None
    assert check.verify(op["http_token"]).scopes == {"internal", "ops"}
    assert stat.S_IMODE(credentials.file_of("operator:local", tmp_path).stat().st_mode) == 0o600
    assert tokens.provision_tokens(principals, tmp_path) == []  # idempotent
    # A token of another issuer (a directory made anew) is replaced.
    credentials.write({**op, "http_token": tokens.issue("operator:local", directory=tmp_path / "old")}, tmp_path)
    assert tokens.provision_tokens(principals, tmp_path) == ["operator:local"]


def test_provision_token_file_for_prometheus(tmp_path: Path) -> None:
    path = tmp_path / tokens.PROMETHEUS_TOKEN_FILE
    assert tokens.provision_token_file(path, tokens.PROMETHEUS_PRINCIPAL, "ops", tmp_path)
    assert not tokens.provision_token_file(path, tokens.PROMETHEUS_PRINCIPAL, "ops", tmp_path)
    assert verifier(tmp_path).verify(path.read_text().strip()).scopes == {"ops"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_shell_gets_its_principals_settings_and_the_database_only_as_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from credit_common.security import credentials, kafka_acl

    monkeypatch.setenv("DATABASE_URL", "postgresql://credit:secret@db:5432/credit")
    kafka_acl.ensure_passwords(["admin", "operator:local"], tmp_path)
    operator = "\n".join(credentials.shell_settings("operator:local", tmp_path))
    assert "export KAFKA_SASL_USERNAME=operator-local" in operator
    assert "CREDIT_PRINCIPAL=operator:local" in operator
    assert "DATABASE_URL" not in operator
    admin = "\n".join(credentials.shell_settings("admin", tmp_path))
    assert "export DATABASE_URL=postgresql://credit:secret@db:5432/credit" in admin
    with pytest.raises(LookupError):
        credentials.shell_settings("unit:NOBODY", tmp_path)
