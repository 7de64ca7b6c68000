"""one-api's password hashes, checked at sign-in so imported accounts keep their passwords.

one-api (Go, golang.org/x/crypto/bcrypt) stores `$2a$10$...`; the importer keeps them as `bcrypt$$2a$10$...`,
Django's own form for bcrypt. This hasher is listed after the default one in PASSWORD_HASHERS, so Django
re-hashes the password with the default on the first sign-in that succeeds, and bcrypt is not needed again.
"""

from __future__ import annotations

import re

from django.contrib.auth.hashers import BCryptPasswordHasher

BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; Go refuses to hash longer passwords, and bcrypt 5 to check them
# one-api hashes at cost 10. A hash bcrypt cannot read raises at every sign-in, and one of cost 15 or more holds a
# worker for seconds to days per attempt (31 is Go's maximum): a copied database is not trusted with either.
ONEAPI_HASH = re.compile(r"\$2[aby]\$(0[4-9]|1[0-4])\$[./A-Za-z0-9]{53}")


class OneAPIBCryptPasswordHasher(BCryptPasswordHasher):
    """Django's plain bcrypt (no SHA-256 step before it, as one-api hashes), that answers a long password
    with False instead of the ValueError bcrypt 5 raises, so such a sign-in is a wrong password, not a 500."""

    def verify(self, password, encoded):
        if password is None or len(password.encode()) > BCRYPT_MAX_BYTES:
            return False
        if not ONEAPI_HASH.fullmatch(encoded.partition("$")[2]):
            return False  # stored before the importer checked hashes
        return super().verify(password, encoded)

    def harden_runtime(self, password, encoded):
        # Django calls this after a wrong password when bcrypt is the preferred hasher; it hashes again.
        if password is not None and len(password.encode()) <= BCRYPT_MAX_BYTES:
            super().harden_runtime(password, encoded)


def from_oneapi(stored: str) -> str | None:
    """The password column's value as this site stores it; None when it is no bcrypt hash one-api made."""
    stored = (stored or "").strip()
    if ONEAPI_HASH.fullmatch(stored):
        return f"{OneAPIBCryptPasswordHasher.algorithm}${stored}"
    return None
