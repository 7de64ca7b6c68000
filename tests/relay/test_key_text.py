"""What a client sends as its key before any lookup: text PostgreSQL cannot compare is no key."""

import pytest

from relay import auth
from relay.errors import RelayError


@pytest.mark.parametrize("authorization", ["Bearer sk-ab\x00cd", "sk-\x00", "Bearer sk-abc\x00-5"])
async def test_a_key_holding_a_nul_is_an_invalid_key_without_a_lookup(monkeypatch, authorization):
    # Gemini's ?key=%00... reached the token query: PostgreSQL refused it (DataError), which the cache reads as
    # a database outage, so the client got 503 "cannot check this API key right now" and the log an outage.
    async def lookup(key):
        raise AssertionError(f"looked up {key!r}")

    monkeypatch.setattr(auth.cache, "get_token", lookup)
    with pytest.raises(RelayError) as refused:
        await auth.authenticate(authorization=authorization, client_ip="127.0.0.1")
    assert (refused.value.status, refused.value.code) == (401, "invalid_api_key")
