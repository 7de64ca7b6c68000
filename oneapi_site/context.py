"""What every page template needs: branding and display options, read from the in-memory option snapshot."""

from __future__ import annotations

from oneapi_site import options
from oneapi_site.lib.markup import is_url


def site(request) -> dict:
    get = options.get
    return {
        "site": {
            "name": get("SystemName") or "One API",
            "logo": get("Logo"),
            "footer": get("Footer"),
            "top_up_link": get("TopUpLink"),
            "chat_link": get("ChatLink"),
            "chat": is_url(get("ChatLink") or ""),          # the header's Chat item, to /chat/
            "about": bool((get("About") or "").strip()),    # the header's About item, to /about/
            "display_in_currency": bool(get("DisplayInCurrencyEnabled")),
            "register_enabled": bool(get("RegisterEnabled")),
            "github_oauth": bool(get("GitHubOAuthEnabled")),
            "oidc": bool(get("OidcEnabled")),
        }
    }
