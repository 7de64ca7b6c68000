import secrets
import string
import uuid

_ALPHABET = string.ascii_letters + string.digits


def random_key(length: int = 48) -> str:
    """A token key as one-api makes them: letters and digits, no `sk-` prefix."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def uuid_hex() -> str:
    """32 hex characters: access tokens and redemption codes."""
    return uuid.uuid4().hex
