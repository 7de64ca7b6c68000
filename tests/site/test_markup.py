"""The operator's Notice, About, HomePageContent and Footer: Markdown with HTML, never a script on the page."""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from billing.services import option_set
from oneapi_site.lib.markup import markdown_html

# Each must lose everything active: scripts, event handlers, javascript:/data: URLs, style, frames and forms.
ATTACKS = [
    "<script>alert('xss')</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert('xss')>",
    "<svg onload=alert('xss')><circle r=1 /></svg>",
    "<a href=\"javascript:alert('xss')\">click</a>",
    "<a href=\"JaVaScRiPt:alert('xss')\">click</a>",
    "<a href=\"java&#x09;script:alert('xss')\">click</a>",
    "[click](javascript:alert('xss'))",
    "[click](<javascript:alert('xss')>)",
    "![x](javascript:alert('xss'))",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgneHNzJyk8L3NjcmlwdD4=\">click</a>",
    "<iframe src=\"https://evil.example/\"></iframe>",
    "<object data=\"https://evil.example/x.swf\"></object><embed src=\"https://evil.example/x\">",
    "<style>body { display: none }</style>",
    "<p style=\"position:fixed;top:0;left:0;width:100%;height:100%\">cover</p>",
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\">",
    "<base href=\"https://evil.example/\">",
    "<form action=\"https://evil.example/\"><input name=password></form>",
    "<div onmouseover=\"alert('xss')\">hover</div>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss')></style></mglyph></table></mtext></math>",
    "<a href=\"https://ok.example/\" onclick=\"alert('xss')\" target=\"_top\">x</a>",
]
FORBIDDEN_TAGS = {"script", "iframe", "frame", "object", "embed", "style", "link", "meta", "base", "form", "input",
                  "button", "textarea", "svg", "math"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster"}


class ActiveParts(HTMLParser):
    """What in an HTML fragment could run or restyle the page: tags, handlers, style and script URLs."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name.startswith("on") or name == "style":
                self.found.append(f"{tag} {name}=")
            if name in URL_ATTRIBUTES and value.startswith(("javascript:", "data:", "vbscript:")):
                self.found.append(f"{tag} {name}={value}")
            if name == "target" and value != "_blank":
                self.found.append(f"{tag} target={value}")

    handle_startendtag = handle_starttag


def active(html: str) -> list[str]:
    return ActiveParts(html).found


def test_the_checker_sees_what_it_must():
    for attack in ATTACKS:
        if attack.startswith("<"):
            assert active(attack), attack   # each HTML attack is active as written...


@pytest.mark.parametrize("attack", ATTACKS)
def test_nothing_active_survives(attack):
    assert active(markdown_html(attack)) == []   # ...and nothing of it is once rendered


def test_markdown_and_plain_html_are_kept():
    html = markdown_html("# Title\n\n**bold**, *em*, `code` and a [link](https://example.com/a?b=1&c=2)\n\n"
                         "- one\n- two\n\n<b>html</b> <a href=\"https://example.com\" target=\"_blank\">new tab</a>\n\n"
                         "| a | b |\n|---|---|\n| 1 | 2 |")
    for part in ("<h1>Title</h1>", "<strong>bold</strong>", "<em>em</em>", "<code>code</code>",
                 '<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer">link</a>',
                 "<li>one</li>", "<b>html</b>", 'target="_blank"', "<td>2</td>"):
        assert part in html, (part, html)


def test_plain_text_keeps_its_line_breaks():
    assert markdown_html("first line\nsecond line") == "<p>first line<br>\nsecond line</p>\n"


# --- the four options on the real pages ---------------------------------------------------------------

PAYLOAD = ("**Hello** <em>there</em> <img src=\"x.png\" onerror=\"alert('xss')\"> <script>alert('xss')</script>"
           "<a href=\"javascript:alert('xss')\">j</a> <span style=\"color:red\">s</span>")


def _assert_rendered_and_safe(html: str, container: str) -> None:
    block = re.search(rf'id="{container}"[^>]*>(.*?)</(div|footer)>', html, re.S).group(1)
    assert "<strong>Hello</strong>" in block and "<em>there</em>" in block
    assert '<img src="x.png">' in block       # the image stays, its handler goes
    assert active(block) == [] and "alert(" not in block


@pytest.mark.django_db
@pytest.mark.parametrize("option, path, container", [
    ("Notice", "/", "notice"),
    ("HomePageContent", "/", "home-content"),
    ("About", "/about/", "about-content"),
    ("Footer", "/login/", "site-footer"),
])
def test_each_option_is_rendered_as_markdown_and_sanitised(option, path, container):
    option_set(key=option, value=PAYLOAD)
    response = Client().get(path)
    assert response.status_code == 200
    _assert_rendered_and_safe(response.content.decode(), container)
