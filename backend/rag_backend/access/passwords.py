"""Argon2id password hashes (argon2-cffi, the library's RFC 9106 low-memory profile), on their own bounded pool:
a hash takes tens of milliseconds of CPU and must never run on the event loop."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rag_backend.pools import Pool

MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing a 10 MB "password" would be a denial of service

_hasher = PasswordHasher()  # Argon2id, RFC 9106 low-memory parameters
# Verified when the account does not exist or has no password, so that a wrong e-mail costs the same time as a
# wrong password: the answer's timing does not tell whether an account exists.
_DUMMY = _hasher.hash("not a password of anybody's")


class Passwords:
    def __init__(self, threads: int = 2) -> None:
        self.pool = Pool("hashing-passwords", threads)

    def close(self) -> None:
        self.pool.close()

    async def hash(self, password: str) -> str:
        return await self.pool.run(_hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        return await self.pool.run(verify, stored, password)


def verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"passwords are at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"passwords are at most {MAX_LENGTH} characters"
    return None


def hash_now(password: str) -> str:
    """For the CLI (synchronous, no event loop)."""
    return _hasher.hash(password)
