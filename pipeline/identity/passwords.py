"""Password hashes: Argon2id through argon2-cffi, with its current default parameters."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipeline.identity.actors import IdentityError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # Argon2 takes any length; a megabyte "password" is a denial of service


@cache
def hasher() -> PasswordHasher:
    return PasswordHasher()


def check_password_strength(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise IdentityError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise IdentityError(f"password: at most {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return hasher().hash(check_password_strength(password))


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash or None). argon2 compares the digests in constant time; the new hash is given
    when the stored one was made with other parameters than the hasher's now (store it to upgrade)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False, None
    if stored_hash is None:
        # No password set: spend the same time as a real check, so timing does not tell such users apart.
        _burn(password)
        return False, None
    try:
        hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    return True, (hash_password_unchecked(password) if hasher().check_needs_rehash(stored_hash) else None)


def hash_password_unchecked(password: str) -> str:
    """A hash of a password already accepted once (a rehash must not apply today's length rule to it)."""
    return hasher().hash(password)


@cache
def _dummy_hash() -> str:
    return hasher().hash("docket: no such user or no password")


def _burn(password: str) -> None:
    """One full verification against a hash no password matches: for unknown users and users without
    a password, so that a failed login takes the same time whichever the reason."""
    try:
        hasher().verify(_dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass
