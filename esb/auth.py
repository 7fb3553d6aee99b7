"""Bearer-token authentication and tenant scoping.

Every endpoint except ``/health`` and ``/metrics`` needs a JWT. The tenant comes from the token's
``tenant_id`` claim, never from the request body: a body ``tenant_id`` that disagrees is a 403.
What the token may do comes from its ``roles`` and ``esb_scopes`` claims (:mod:`esb.authz`,
ADR 0015); a token without roles may do nothing but reach the public endpoints.

Keys: HS256 with a shared secret (the default), RS256/ES256 with one PEM public key, or the
keys of an identity provider's JWKS (``ESB_JWT_JWKS_URL``, rotated by ``kid``). In production
mode the worker refuses to start without an issuer, an audience and a configured key: the
generated per-data-dir development key exists only in development mode.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from esb.authz import (
    ROLES_CLAIM,
    SCOPES_CLAIM,
    Narrowing,
    Permission,
    Role,
    ScopeError,
    parse_roles,
    parse_scopes,
    permissions_of,
)
from esb.errors import AuthenticationError, ConfigurationError, InvalidRequest, PermissionDenied
from esb.jwks import JwksKeys
from esb.settings import Settings
from esb.tenancy import check_tenant_id

OPERATOR_ROLE = Role.OPERATOR.value  # may read cross-tenant operational data (unattributed DLQ)
ADMIN_ROLE = Role.ADMIN.value
#: Roles that may see the bus's internals (e.g. the detailed /health checks).
OPERATIONS_ROLES = frozenset({OPERATOR_ROLE, ADMIN_ROLE})
#: What ``mint_token`` (``esb token``, ``esb up``, the tests) grants when no role is named.
DEFAULT_MINTED_ROLES = (ADMIN_ROLE,)

_NO_NARROWING: Mapping[Permission, Narrowing] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant: str
    roles: frozenset[str] = field(default_factory=frozenset)
    narrowings: Mapping[Permission, Narrowing] = field(default_factory=lambda: _NO_NARROWING,
                                                       compare=False)

    @property
    def is_operator(self) -> bool:
        return OPERATOR_ROLE in self.roles

    @property
    def sees_operations(self) -> bool:
        """Operators and admins may see infrastructure detail (hosts, partitions, errors)."""
        return not self.roles.isdisjoint(OPERATIONS_ROLES)

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of(self.roles)

    def narrowing(self, permission: Permission) -> Narrowing | None:
        """The token's ``esb_scopes`` limits on ``permission`` (None: not narrowed)."""
        return self.narrowings.get(permission)

    def check_tenant(self, claimed: str | None) -> str:
        """A body may repeat the tenant; it may not name another one."""
        if claimed is not None and claimed != self.tenant:
            raise PermissionDenied(
                f"tenant_id {claimed!r} does not match the token's tenant", tenant_id=claimed
            )
        return self.tenant


def check_security_settings(settings: Settings) -> None:
    """Production mode refuses to run without issuer, audience and a configured key."""
    if settings.mode != "production":
        return
    missing = [name for name, value in (("ESB_JWT_ISSUER", settings.jwt_issuer),
                                        ("ESB_JWT_AUDIENCE", settings.jwt_audience)) if not value]
    if not (settings.jwt_jwks_url or settings.jwt_public_key
            or (settings.jwt_algorithm == "HS256" and settings.jwt_secret is not None)):
        missing.append("a key (ESB_JWT_JWKS_URL, ESB_JWT_PUBLIC_KEY or ESB_JWT_SECRET)")
    if missing:
        raise ConfigurationError(
            "ESB_MODE=production requires " + ", ".join(missing)
            + " (set ESB_MODE=development for a local bus with a generated key)")
    if settings.jwt_jwks_url and not settings.jwt_jwks_url.startswith("https://"):
        raise ConfigurationError("ESB_JWT_JWKS_URL must be an https:// URL in production mode")


class Authenticator:
    """Verifies bearer tokens. Verified tokens are cached until they expire (bounded), because
    signature checking was a sixth of the CPU of a single-event publish."""

    CACHE_SIZE = 10_000

    def __init__(self, settings: Settings) -> None:
        check_security_settings(settings)
        self._verified: dict[str, tuple[Principal, float]] = {}
        self.algorithm = settings.jwt_algorithm
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.jwks: JwksKeys | None = None
        if settings.jwt_jwks_url:
            self.jwks = JwksKeys(settings.jwt_jwks_url, refresh_s=settings.jwt_jwks_refresh_s)
            self._key: Any = None
        elif self.algorithm != "HS256":
            if not settings.jwt_public_key:
                raise ConfigurationError(
                    f"ESB_JWT_PUBLIC_KEY is required with ESB_JWT_ALGORITHM={self.algorithm}")
            self._key = settings.jwt_public_key
        else:
            self._key = settings.jwt_signing_key()

    def authenticate(self, authorization: str | None) -> Principal:
        """Synchronous: JWKS keys come from the cache only (see :meth:`authenticate_async`)."""
        return self.decode(bearer_token(authorization))

    async def authenticate_async(self, authorization: str | None) -> Principal:
        """As :meth:`authenticate`, refetching the JWKS first when it is stale or the token
        names a ``kid`` it lacks (key rotation at the IdP)."""
        token = bearer_token(authorization)
        if self.jwks is not None and token not in self._verified:
            kid = _header(token).get("kid")
            unknown = isinstance(kid, str) and self.jwks.key(kid) is None
            if (self.jwks.stale or unknown) and await self.jwks.refresh():
                self._verified.clear()  # a key may have been withdrawn
        return self.decode(token)

    def decode(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            del self._verified[token]
        principal, expires = self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _key_for(self, token: str) -> tuple[Any, str]:
        if self.jwks is None:
            return self._key, self.algorithm
        header = _header(token)
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthenticationError("token header names no kid (ESB_JWT_JWKS_URL is set)")
        key = self.jwks.key(kid)
        if key is None:
            raise AuthenticationError("token is signed with an unknown key (kid)")
        return key.key, key.algorithm_name

    def _verify(self, token: str) -> tuple[Principal, float]:
        key, algorithm = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from None
        tenant = claims.get("tenant_id") or claims.get("tenant")
        if not isinstance(tenant, str):
            raise AuthenticationError("token has no tenant_id claim")
        try:
            check_tenant_id(tenant)
        except InvalidRequest as exc:
            raise AuthenticationError(f"token tenant_id is not a valid tenant: {exc.message}"
                                      ) from None
        try:
            roles = parse_roles(claims.get(ROLES_CLAIM))
            narrowings = parse_scopes(claims.get(SCOPES_CLAIM))
        except ScopeError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from None
        principal = Principal(str(claims["sub"]), tenant, roles, MappingProxyType(narrowings))
        return principal, float(claims["exp"])


def bearer_token(authorization: str | None) -> str:
    """The JWT of an ``Authorization`` header: ``Bearer <jwt>``, or HTTP basic auth whose
    password is the JWT (what Confluent clients send)."""
    if not authorization:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <jwt>)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "basic" and token:
        try:
            _, _, token = base64.b64decode(token.strip()).decode().partition(":")
        except ValueError:
            raise AuthenticationError("malformed basic credentials") from None
    elif scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Authorization header must be 'Bearer <jwt>'")
    if not token.strip():
        raise AuthenticationError("missing token")
    return token.strip()


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError(f"invalid token: {exc}") from None


def mint_token(
    settings: Settings,
    *,
    tenant: str,
    subject: str = "dev",
    roles: list[str] | None = None,
    scopes: list[str] | None = None,
    ttl_s: int = 86400,
) -> str:
    """Mint an HS256 token with the configured (or, in development, generated) secret. Without
    ``roles`` the token is an admin of its tenant (``roles=[]`` mints one that may do nothing).
    A malformed or reserved tenant is an InvalidRequest: the bus would refuse the token anyway."""
    if settings.jwt_algorithm != "HS256" or settings.jwt_jwks_url:
        raise ConfigurationError("esb token mints HS256 tokens only; use your IdP for "
                                 "RS256/ES256/JWKS")
    if settings.mode == "production" and settings.jwt_secret is None:
        raise ConfigurationError("ESB_MODE=production: set ESB_JWT_SECRET to mint tokens")
    check_tenant_id(tenant)
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject, "tenant_id": tenant,
        ROLES_CLAIM: list(DEFAULT_MINTED_ROLES if roles is None else roles),
        "iat": now, "exp": now + ttl_s,
    }
    if scopes:
        claims[SCOPES_CLAIM] = list(scopes)
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_signing_key(), algorithm="HS256")
