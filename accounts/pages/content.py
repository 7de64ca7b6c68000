"""The operator's own pages: About (the About option) and Chat (the ChatLink option), as one-api has them."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from oneapi_site import options
from oneapi_site.lib.markup import is_url


def about(request):
    """Markdown or HTML (sanitised), or an http(s) address shown in a frame; no page while the option is empty."""
    content = (options.get("About") or "").strip()
    if not content:
        raise Http404
    return render(request, "accounts/about.html", {"content": content, "content_is_url": is_url(content)})


def chat(request):
    """ChatLink (a chat front end such as ChatGPT-Next-Web) in a frame, as one-api's Chat menu item opens it."""
    link = (options.get("ChatLink") or "").strip()
    if not is_url(link):
        raise Http404
    return render(request, "accounts/chat.html", {"link": link})
