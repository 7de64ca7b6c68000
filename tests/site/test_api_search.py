"""The management API's searches take any keyword: an id-like one matches ids, a prefix one names."""

import pytest

from billing.models import Log
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory, RedemptionFactory, TokenFactory

pytestmark = pytest.mark.django_db

SEARCHES = ["/api/user/search", "/api/channel/search", "/api/redemption/search", "/api/log/search",
            "/api/token/search", "/api/log/self/search"]


@pytest.mark.parametrize("path", SEARCHES)
@pytest.mark.parametrize("keyword", [
    "9" * 5000,  # int() refuses past 4,300 digits
    "²",  # a digit to str.isdigit(), not to int()
    "-" + "1" * 30,
    "a" * 70_000,  # SQLite: "LIKE or GLOB pattern too complex" past 50,000 bytes
], ids=["5000-digits", "superscript-two", "30-digit-negative", "70000-chars"])
def test_any_keyword_is_answered_with_no_matches(root_api, path, keyword):
    assert envelope(root_api.get(path, {"keyword": keyword})) == []


def test_ids_and_prefixes_still_match(root_api, root, alice):
    channel = ChannelFactory(name="openai-main")
    code = RedemptionFactory(name="promo")
    TokenFactory(user=root, name="root-key")
    Log.objects.create(user_id=root.pk, type=Log.Type.TOPUP, content="Top-up by card")
    assert [u["id"] for u in envelope(root_api.get("/api/user/search", {"keyword": str(alice.pk)}))] == [alice.pk]
    assert [c["id"] for c in envelope(root_api.get("/api/channel/search", {"keyword": "openai-"}))] == [channel.pk]
    assert [c["id"] for c in envelope(root_api.get("/api/redemption/search", {"keyword": str(code.pk)}))] == [code.pk]
    assert [t["name"] for t in envelope(root_api.get("/api/token/search", {"keyword": "root-"}))] == ["root-key"]
    assert len(envelope(root_api.get("/api/log/search", {"keyword": str(Log.Type.TOPUP)}))) == 1
    assert len(envelope(root_api.get("/api/log/search", {"keyword": "Top-up by"}))) == 1
