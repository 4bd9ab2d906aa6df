"""Who may call what over HTTP (contracts.md, Security, HTTP), in one place every service's app
takes from the app factory.

`RULES` is the whole table, first match wins, and whatever no rule names needs scope `internal`:
a route added tomorrow is protected before anyone thinks of it (a unit test walks every route of
every service against this table).

- Open to anyone: `/health/live`, `/health/ready`, everything under `/v1/public/`,
  `GET /v1/cases/typical`, `POST /v1/requests` (its signature is its authentication).
- Scope `ops`: the operator dashboards (`/`, `/dashboard.json`, `/dashboard/...`), `/metrics`,
  `/docs` and everything under it (AsyncAPI too), `/openapi.json`.
- Scope `internal`: everything else (internal reads, exports, inboxes).
- A `unit:<code>` token without scope may pass to the routes marked `units`: its requests,
  designations and inbox. The route itself then checks the resource is the unit's own
  (`require_owner`), since only the route knows whose it is.

The token comes from `Authorization: Bearer <JWT>`. For a person at a browser, who cannot set a
header, two more ways, both for GET only: the cookie `credit_token` (HttpOnly, SameSite=Strict,
Path=/), and `?token=<JWT>` on any protected URL, which answers with a redirect to the same URL
without the parameter and sets that cookie: open `http://127.0.0.1:8101/?token=...` once and the
dashboards of every service on that host follow (a cookie is not bound to a port).

No token, or one that does not verify (signature, `exp`, `iss`, `aud`): 401 problem details with
`WWW-Authenticate: Bearer`. A valid token without the right: 403 problem details."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from anyio import to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from credit_common.http.problems import Problem, problem_response
from credit_common.security.tokens import SCOPE_INTERNAL, SCOPE_OPS, Principal, TokenError, TokenVerifier
from credit_common.telemetry.logging import get_logger

#: Where the verified principal is kept in the ASGI scope (read it with `principal_of`).
PRINCIPAL_KEY = "credit.principal"
#: Set once a request has been through the check (the served app may check in front of the
#: service's fast paths, the FastAPI app behind them: a request is checked once).
CHECKED_KEY = "credit.auth_checked"
COOKIE = "credit_token"
QUERY = "token"
REALM = "credit-platform"

_log = get_logger(__name__)


class Access(StrEnum):
    OPEN = "open"
    OPS = SCOPE_OPS
    INTERNAL = SCOPE_INTERNAL


@dataclass(frozen=True)
class Rule:
    """`path`: a route template: a `{name}` segment matches any one segment, a last `*` any one
    or more. `methods`: None for any. `units`: a scope-less `unit:<code>` token may pass (the
    route checks ownership)."""

    path: str
    access: Access
    methods: frozenset[str] | None = None
    units: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return _match(self.path.strip("/").split("/"), path.strip("/").split("/"))


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    for i, segment in enumerate(pattern):
        if segment == "*" and i == len(pattern) - 1:
            return len(parts) > i and parts[i] != ""
        if i >= len(parts):
            return False
        if segment.startswith("{") and segment.endswith("}"):
            if not parts[i]:
                return False
        elif segment != parts[i]:
            return False
    return len(parts) == len(pattern)


GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})

#: The table, first match wins (contracts.md, Security, HTTP).
RULES: tuple[Rule, ...] = (
    Rule("/health/live", Access.OPEN),
    Rule("/health/ready", Access.OPEN),
    Rule("/v1/public/*", Access.OPEN),
    Rule("/v1/cases/typical", Access.OPEN, GET),
    Rule("/v1/requests", Access.OPEN, POST),
    Rule("/", Access.OPS),
    Rule("/dashboard.json", Access.OPS),
    Rule("/dashboard/*", Access.OPS),
    Rule("/metrics", Access.OPS),
    Rule("/docs", Access.OPS),
    Rule("/docs/*", Access.OPS),
    Rule("/openapi.json", Access.OPS),
    Rule("/redoc", Access.OPS),
    Rule("/v1/requests/{request_id}", Access.INTERNAL, GET, units=True),
    Rule("/v1/designations/{designation_id}", Access.INTERNAL, GET, units=True),
    Rule("/v1/units/{code}/inbox", Access.INTERNAL, GET, units=True),
)
#: What every path no rule names needs.
DEFAULT_RULE = Rule("*", Access.INTERNAL)
#: The routes open to anyone, as the contract lists them (method, route template).
OPEN_ROUTES = frozenset(
    {
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/v1/cases/typical"),
        ("POST", "/v1/requests"),
    }
)


def rule_for(method: str, path: str, rules: Sequence[Rule] = RULES) -> Rule:
    """The rule that decides a request (or a route template: `{x}` matches a `{name}` segment)."""
    return next((r for r in rules if r.matches(method.upper(), path)), DEFAULT_RULE)


def allowed(rule: Rule, principal: Principal) -> bool:
    return rule.access is Access.OPEN or principal.has(rule.access) or (rule.units and principal.unit is not None)


def principal_of(request: Request) -> Principal | None:
    """The principal the request's token speaks for (None on an open route without a token)."""
    found = request.scope.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else None


def require_owner(request: Request, unit: str | None) -> None:
    """Refuse (403) a unit's token reading what belongs to another unit (`unit`: the owner's
    code). A token with scope `internal` reads everything."""
    principal = principal_of(request)
    if principal is None or principal.has(SCOPE_INTERNAL):
        return
    if principal.unit is None or principal.unit != unit:
        raise Problem(403, "Forbidden", "a unit's token reads only that unit's own requests, designations and inbox")


class Authenticator:
    """The verifier and the table a service's middleware applies."""

    def __init__(self, verifier: TokenVerifier, rules: Sequence[Rule] = RULES) -> None:
        self.verifier = verifier
        self.rules = tuple(rules)

    async def verify(self, token: str) -> Principal:
        found = self.verifier.cached(token)
        if found is not None:
            return found
        if self.verifier.may_block:  # the JWKS may have to be fetched: not on the event loop
            return await to_thread.run_sync(self.verifier.verify, token)
        return self.verifier.verify(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _unauthorised(detail: str, presented: bool) -> Problem:
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if presented else "")
    return Problem(401, "Authentication required", detail, headers={"WWW-Authenticate": challenge})


def _forbidden(rule: Rule) -> Problem:
    needed = "a unit's own resource or scope internal" if rule.units else f"scope {rule.access.value}"
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{rule.access.value}"'
    return Problem(403, "Forbidden", f"this token does not grant {needed}", headers={"WWW-Authenticate": challenge})


class AuthMiddleware:
    """Applies `authenticator` to every HTTP request (see the module's docstring)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(CHECKED_KEY):
            await self.app(scope, receive, send)
            return
        scope[CHECKED_KEY] = True
        method, path = scope["method"], scope["path"]
        rule = rule_for(method, path, self.auth.rules)
        if rule.access is Access.OPEN:  # not even a token is looked at
            await self.app(scope, receive, send)
            return
        token, from_query = self._token(scope)
        principal: Principal | None = None
        if token is not None:
            try:
                principal = await self.auth.verify(token)
            except TokenError as exc:
                _log.info("token_refused", method=method, path=path, reason=str(exc))
                await problem_response(_unauthorised("the bearer token is not valid", True))(scope, receive, send)
                return
        if principal is None:
            await problem_response(_unauthorised("send Authorization: Bearer <token>", False))(scope, receive, send)
            return
        if not allowed(rule, principal):
            _log.info("token_forbidden", method=method, path=path, sub=principal.sub)
            await problem_response(_forbidden(rule))(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        if from_query and token is not None:
            await self._set_cookie(scope, token, principal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _token(scope: Scope) -> tuple[str | None, bool]:
        """The token and whether it came in the query string (to be moved into the cookie)."""
        header = _header(scope, b"authorization")
        if header is not None:
            kind, _, value = header.partition(" ")
            return (value.strip() or None, False) if kind.lower() == "bearer" else (None, False)
        if scope["method"] not in GET:
            return None, False
        query = scope.get("query_string", b"").decode("latin-1")
        if f"{QUERY}=" in query:
            for name, value in parse_qsl(query, keep_blank_values=True):
                if name == QUERY and value:
                    return value, True
        cookie = _header(scope, b"cookie")
        if cookie:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(cookie)
            except Exception:
                return None, False
            if COOKIE in jar and jar[COOKIE].value:
                return jar[COOKIE].value, False
        return None, False

    @staticmethod
    def _set_cookie(scope: Scope, token: str, principal: Principal) -> ASGIApp:
        """303 to the URL without `?token=`, setting the cookie for as long as the token lives."""
        query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True) if k != QUERY]
        location = scope.get("root_path", "") + scope["path"] + (f"?{urlencode(query)}" if query else "")
        max_age = max(0, int((principal.expires_at or time.time()) - time.time()))
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"

        async def redirect(scope: Scope, receive: Receive, send: Send) -> None:
            headers = [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", cookie.encode("latin-1")),
                (b"cache-control", b"no-store"),
                (b"referrer-policy", b"no-referrer"),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body", "body": b""})

        return redirect
