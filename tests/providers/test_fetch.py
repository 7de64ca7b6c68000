import pytest

from providers.adapters.base import UpstreamError
from providers.adapters.fetch import fetch_image


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/cat.png", "http://169.254.169.254/latest/meta-data",
                                 "http://localhost/x.png", "http://10.0.0.1/x.png"])
async def test_private_addresses_are_not_fetched_for_clients(url, settings):
    settings.USER_CONTENT_ALLOW_PRIVATE = False
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as refused:
            await fetch_image(session, url)
    assert refused.value.status == 400 and refused.value.code == "image_url_not_public"
    assert not refused.value.retryable


async def test_only_http_urls_are_fetched():
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError, match="not an http"):
            await fetch_image(session, "file:///etc/passwd")
