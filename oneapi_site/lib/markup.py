"""The operator's own content on the pages (Notice, About, HomePageContent, Footer): Markdown with HTML allowed,
as one-api renders them, but sanitised, so a stolen root session cannot turn them into a script on every
visitor's page: no script or style, no event handlers, no javascript: or data: URLs, no forms or frames.
"""

from __future__ import annotations

import functools
import re

import nh3
from markdown_it import MarkdownIt

# one-api shows such HomePageContent (and About) in an iframe instead of as text.
URL_CONTENT = re.compile(r"^https?://\S+$", re.IGNORECASE)

# "breaks": a plain-text notice keeps its line breaks, as it did before Markdown.
_MARKDOWN = MarkdownIt("commonmark", {"html": True, "breaks": True}).enable(["table", "strikethrough"])

_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"title", "lang", "dir"}
_URL_SCHEMES = {"http", "https", "mailto", "tel"}


def is_url(content: str) -> bool:
    return bool(URL_CONTENT.match(content.strip()))


@functools.lru_cache(maxsize=64)  # the footer is on every page; the options change rarely
def markdown_html(text: str) -> str:
    """Safe HTML for `text`; links keep rel="noopener noreferrer" and may open a new tab."""
    return nh3.clean(_MARKDOWN.render(text or ""), attributes=_ATTRIBUTES, url_schemes=_URL_SCHEMES,
                     tag_attribute_values={"a": {"target": {"_blank"}}}, link_rel="noopener noreferrer")
