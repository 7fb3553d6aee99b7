"""Roles, permissions and scopes (ADR 0015): who may call which route.

Every row of the route table (:mod:`esb.api_spec`) declares the one :class:`Permission` it
needs; a token's ``roles`` claim grants permissions through :data:`GRANTS`; the HTTP middleware
checks the pair once, before any view runs. Views never check roles themselves.

A token may narrow a permission with the ``esb_scopes`` claim: ``"publish:orders-*"`` limits
publishing to streams whose name matches the glob, ``"publish:type:order.*"`` to event types
that match (both kinds present: both must match). Globs are RE2 (:mod:`esb.globs`). A narrowed
permission only opens routes that can check the narrowing: those naming a stream in their path
and the publish routes (each event is checked after its stream is decided); any other route
needing that permission is refused, so a narrowed token never sees more than it was given.

Plain logic: no views, no agents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from esb.errors import MissingRole, OutOfScope
from esb.globs import GlobSet, PatternError, compile_globs


class Permission(StrEnum):
    """What a route needs. ``public`` routes need no token at all."""

    PUBLIC = "public"
    READ = "read"  # read-only calls: GETs, queries, validation, compatibility checks
    PUBLISH = "publish"  # publish events, append to aggregates
    SUBSCRIBE = "subscribe"  # own subscriptions and consumer groups; consume over WebSocket
    OPERATE = "operate"  # redrive, replay, rebuild, rebalance, start/stop jobs
    ADMIN = "admin"  # the tenant's configuration: streams, schemas, jobs, deletes, levels
    #: a tenant's limits are the platform's call: a tenant admin must not raise its own quotas
    LIMITS = "limits"


class Role(StrEnum):
    """The ``roles`` claim's values (anything else in the claim is ignored)."""

    ADMIN = "admin"
    OPERATOR = "operator"
    PUBLISHER = "publisher"
    SUBSCRIBER = "subscriber"
    READER = "reader"


#: The one role table: what each role may do (always inside the token's own tenant).
GRANTS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.READ, Permission.PUBLISH, Permission.SUBSCRIBE,
                          Permission.OPERATE, Permission.ADMIN}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE, Permission.LIMITS}),
    Role.PUBLISHER: frozenset({Permission.PUBLISH}),
    Role.SUBSCRIBER: frozenset({Permission.READ, Permission.SUBSCRIBE}),
    Role.READER: frozenset({Permission.READ}),
}

#: Claim names (documented in the README's Security section).
ROLES_CLAIM = "roles"
SCOPES_CLAIM = "esb_scopes"
#: The longest scope list a token may carry (each entry is compiled to RE2 once, then cached).
MAX_SCOPES = 64


class ScopeError(ValueError):
    """A malformed ``esb_scopes`` entry (the token is then refused as invalid)."""


def parse_roles(claim: object) -> frozenset[str]:
    """The ``roles`` claim as a set: a JSON list, or one space-separated string (OAuth style)."""
    if claim is None:
        return frozenset()
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list | tuple):
        return frozenset(str(r) for r in claim)
    raise ScopeError(f"the {ROLES_CLAIM} claim must be a list of strings")


def permissions_of(roles: Iterable[str]) -> frozenset[Permission]:
    """Everything ``roles`` grant together; unknown role names grant nothing."""
    granted: set[Permission] = set()
    for name in roles:
        if name in Role.__members__.values():
            granted |= GRANTS[Role(name)]
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Narrowing:
    """One permission's limits from ``esb_scopes``: stream-name globs, event-type globs."""

    permission: Permission
    streams: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def _match(self, globs: tuple[str, ...], value: str | None) -> bool:
        if not globs:
            return True
        return value is not None and _globset(globs)(value)

    def allows(self, *, stream: str | None = None, event_type: str | None = None) -> bool:
        return self._match(self.streams, stream) and self._match(self.types, event_type)

    def require(self, *, stream: str | None = None, event_type: str | None = None) -> None:
        """Raise :class:`OutOfScope` unless the stream and event type are within the scope."""
        if not self.allows(stream=stream, event_type=event_type):
            raise OutOfScope(
                f"the token's {self.permission.value} scope does not cover stream "
                f"{stream!r}" + (f" and event type {event_type!r}" if self.types else ""),
                permission=self.permission.value)


def _globset(globs: tuple[str, ...]) -> GlobSet:
    return compile_globs(globs)


def parse_scopes(claim: object) -> dict[Permission, Narrowing]:
    """``esb_scopes`` as narrowings per permission. Entries: ``perm:glob`` (stream names) or
    ``perm:type:glob`` (event types). A malformed entry is a :class:`ScopeError`."""
    if claim is None:
        return {}
    if isinstance(claim, str):
        claim = claim.split()
    if not isinstance(claim, list | tuple) or len(claim) > MAX_SCOPES:
        raise ScopeError(f"the {SCOPES_CLAIM} claim must be a list of at most {MAX_SCOPES} "
                         "strings")
    streams: dict[Permission, list[str]] = {}
    types: dict[Permission, list[str]] = {}
    for entry in claim:
        if not isinstance(entry, str):
            raise ScopeError(f"{SCOPES_CLAIM} entries must be strings")
        name, _, rest = entry.partition(":")
        try:
            permission = Permission(name)
        except ValueError:
            raise ScopeError(f"{SCOPES_CLAIM} entry {entry[:80]!r} names no permission") from None
        target, glob = (types, rest[5:]) if rest.startswith("type:") else (streams, rest)
        if permission is Permission.PUBLIC or not glob:
            raise ScopeError(f"{SCOPES_CLAIM} entry {entry[:80]!r} must be "
                             "'<permission>:<glob>' or '<permission>:type:<glob>'")
        target.setdefault(permission, []).append(glob)
    out: dict[Permission, Narrowing] = {}
    for permission in {*streams, *types}:
        narrowing = Narrowing(permission, tuple(streams.get(permission, ())),
                              tuple(types.get(permission, ())))
        try:
            for globs in (narrowing.streams, narrowing.types):
                if globs:
                    _globset(globs)
        except PatternError as exc:
            raise ScopeError(f"{SCOPES_CLAIM}: {exc}") from None
        out[permission] = narrowing
    return out


#: Publish routes check the narrowing per event (after routing decides the stream); the unit
#: tests keep this set equal to the table's publish rows.
CHECKS_SCOPE_IN_BODY = frozenset({"publish_event", "publish_batch", "append_event"})


def authorize(permissions: frozenset[Permission], narrowings: Mapping[Permission, Narrowing],
              *, needs: Permission, operation_id: str, stream: str | None) -> None:
    """Refuse (403) unless the permissions include ``needs``. A narrowed permission is only
    accepted where the narrowing can be checked: a stream in the path (checked here) or a
    publish route (checked per event by the caller)."""
    if needs is Permission.PUBLIC:
        return
    if needs not in permissions:
        raise MissingRole(f"this route needs the {needs.value} permission; the token's roles "
                          f"do not grant it", required=needs.value,
                          granted_by=sorted(r.value for r, p in GRANTS.items() if needs in p))
    narrowing = narrowings.get(needs)
    if narrowing is None or operation_id in CHECKS_SCOPE_IN_BODY:
        return
    if stream is None or narrowing.types:
        raise OutOfScope(f"the token's {needs.value} permission is narrowed by "
                         f"{SCOPES_CLAIM}; this route cannot be narrowed",
                         permission=needs.value)
    narrowing.require(stream=stream)
