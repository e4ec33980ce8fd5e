"""Who is calling and what they may do: roles, key scopes, the caller (Principal), and the access errors.

A level orders both roles and key scopes (viewer/read < editor/write < admin), so a key's power is the lower of
its scope and its owner's role: a key can never do more than its owner, and lowering the owner's role lowers
every key at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rag_backend.errors import DomainError, InvalidInput


class Role(StrEnum):
    VIEWER = "viewer"  # reads the collections it is granted
    EDITOR = "editor"  # also creates collections (it owns them) and writes where granted
    ADMIN = "admin"  # everything: every collection, users, every key


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class Access(StrEnum):
    """A grant on one collection."""

    READ = "read"
    WRITE = "write"


LEVEL = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3, Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}
READ, WRITE, ADMIN = 1, 2, 3


class Via(StrEnum):
    NONE = "none"  # AUTH_MODE=none: anyone who reaches the loopback listener
    OPERATOR = "operator"  # the legacy API_KEY
    SESSION = "session"  # the sign-in cookie
    KEY = "key"  # a user's API key
    ANONYMOUS = "anonymous"  # nothing presented (only the sign-in routes accept it)


@dataclass(frozen=True, slots=True)
class Principal:
    via: Via
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    role: Role | None = None
    level: int = 0  # what this credential may do: min(role, key scope)
    key_id: str | None = None

    @property
    def unrestricted(self) -> bool:
        """Reads every collection: no auth, the operator key, or an admin (whatever the key's scope)."""
        return self.via in (Via.NONE, Via.OPERATOR) or self.role == Role.ADMIN

    @property
    def signed_in(self) -> bool:
        return self.via != Via.ANONYMOUS

    def can(self, level: int) -> bool:
        return self.level >= level


NOBODY = Principal(Via.ANONYMOUS)
OPEN = Principal(Via.NONE, role=Role.ADMIN, level=ADMIN)
OPERATOR = Principal(Via.OPERATOR, role=Role.ADMIN, level=ADMIN)


class Unauthenticated(DomainError):
    """No valid credentials: sign in (POST /api/auth/login) or send an API key."""


class Forbidden(DomainError):
    """Signed in, but this role or key scope may not do that."""


class Throttled(DomainError):
    """Too many failed sign-ins for this account or address: wait for Retry-After."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse(kind: type[Role] | type[Scope] | type[Access], value: str) -> Role | Scope | Access:
    """A role, scope or grant from input, or InvalidInput naming the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(v.value for v in kind)
        raise InvalidInput(f"{kind.__name__.lower()} must be one of {allowed}, not {value!r}") from None
