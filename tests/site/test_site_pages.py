"""The site as a whole: favicon, the 404/500/429 pages in the site's frame and both languages, About and Chat."""

import logging
import re
import struct

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client, RequestFactory

from billing.services import option_set
from oneapi_site import pages
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def framed(html: str) -> bool:
    """The page has the site's header (brand, language switcher) and footer, not a bare message."""
    return all(part in html for part in ('<header class="topbar">', 'class="brand"', 'name="language"',
                                         'id="site-footer"', "oneapi/site.css", 'rel="icon"'))


# --- favicon -----------------------------------------------------------------------------------------

def test_favicon_is_served_at_the_root_and_linked_from_pages_and_console(root):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    reserved, kind, count = struct.unpack("<HHH", response.content[:6])
    assert (reserved, kind) == (0, 1) and count >= 1     # an ICO file with at least one image
    assert "max-age" in response["Cache-Control"]
    icon = re.search(r'<link rel="icon" href="([^"]+)"', text(Client().get("/login/"))).group(1)
    assert icon == static("oneapi/favicon.ico") and finders.find("oneapi/favicon.ico")
    console = text(logged_in(root).get("/admin/"))
    assert '<link rel="icon"' in console


def test_root_with_the_default_password_still_gets_the_favicon(root):
    root.set_password("123456")
    root.save()
    assert logged_in(root).get("/favicon.ico").status_code == 200


# --- 404 ---------------------------------------------------------------------------------------------

@pytest.fixture
def crashing_site(settings):
    settings.ROOT_URLCONF = "tests.site.crash_urls"
    return Client(raise_request_exception=False)



@pytest.mark.parametrize("language, heading", [("en", "Page not found"), ("zh-hans", "页面不存在")])
def test_an_unknown_page_is_a_404_in_the_sites_frame(language, heading):
    response = Client().get("/no/such/page/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 404
    html = text(response)
    assert framed(html) and heading in html and 'id="not-found"' in html


def test_a_signed_in_visitor_keeps_the_menu_on_a_404(alice):
    html = text(logged_in(alice).get("/no/such/page/"))
    assert 'href="/dashboard/"' in html and "alice" in html


def test_a_404_raised_on_the_api_keeps_the_envelope(crashing_site):
    response = crashing_site.get("/api/missing/")
    assert response.status_code == 404
    assert response.json()["success"] is False and response.json()["message"]


# --- 500 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("language, heading", [("en", "Something went wrong"), ("zh-hans", "出错了")])
def test_a_failing_page_answers_a_500_page_in_the_sites_frame(crashing_site, language, heading):
    response = crashing_site.get("/crash/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 500
    html = text(response)
    assert framed(html) and heading in html and "boom" not in html and "Traceback" not in html


def test_a_failing_page_keeps_its_traceback_in_the_log_while_a_404_logs_a_line(crashing_site, caplog):
    # Refusals drop their traceback (oneapi_site.lib.log_filters); what failed keeps it.
    with caplog.at_level(logging.INFO):
        crashing_site.get("/crash/")
        crashing_site.get("/api/missing/")
    logged = {r.status_code: r for r in caplog.records if r.name == "django.request"}
    assert logged[500].levelno == logging.ERROR and logged[500].exc_info
    assert logged[404].levelno == logging.WARNING and not logged[404].exc_info


def test_a_failing_api_route_answers_the_envelope(crashing_site):
    response = crashing_site.get("/api/crash/")
    assert response.status_code == 500 and response.json()["success"] is False
    assert "boom" not in text(response)


def test_the_500_page_reads_nothing_from_the_database(alice, django_assert_num_queries):
    # The database may be what failed: the page draws from the options in memory, without the user.
    request = RequestFactory().get("/crash/")
    request.session = {}
    with django_assert_num_queries(0):
        response = pages.server_error(request)
    assert response.status_code == 500 and "Something went wrong" in text(response)


def test_the_500_page_falls_back_to_text_when_the_frame_itself_fails(monkeypatch):
    monkeypatch.setattr(pages, "site", lambda request: 1 / 0)
    response = pages.server_error(RequestFactory().get("/crash/"))
    assert response.status_code == 500 and response["Content-Type"].startswith("text/plain")


# --- 429 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("language, heading", [("en", "Too many requests"), ("zh-hans", "请求过多")])
def test_a_page_over_the_global_limit_answers_a_429_page(settings, language, heading):
    settings.GLOBAL_WEB_RATE_LIMIT = 2
    client = Client(REMOTE_ADDR="203.0.113.90")
    statuses = [client.get("/login/", HTTP_ACCEPT_LANGUAGE=language).status_code for _ in range(2)]
    response = client.get("/login/", HTTP_ACCEPT_LANGUAGE=language)
    assert statuses == [200, 200] and response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    html = text(response)
    assert framed(html) and heading in html and 'id="too-many-requests"' in html


def test_the_dashboard_page_over_its_limit_is_a_page_too(settings, alice):
    settings.GLOBAL_API_RATE_LIMIT = 1
    client = logged_in(alice)
    client.get("/dashboard/", REMOTE_ADDR="203.0.113.91")
    response = client.get("/dashboard/", REMOTE_ADDR="203.0.113.91")
    assert response.status_code == 429 and 'id="too-many-requests"' in text(response)


def test_the_api_over_the_global_limit_keeps_its_json(settings):
    settings.GLOBAL_API_RATE_LIMIT = 1
    client = Client(REMOTE_ADDR="203.0.113.92")
    client.get("/api/status")
    response = client.get("/api/status")
    assert response.status_code == 429 and response.json()["success"] is False


# --- About and Chat ----------------------------------------------------------------------------------

def test_about_and_chat_are_no_pages_and_no_links_until_set():
    assert Client().get("/about/").status_code == 404
    assert Client().get("/chat/").status_code == 404
    html = text(Client().get("/"))
    assert 'id="nav-about"' not in html and 'id="nav-chat"' not in html


def test_about_shows_the_operators_content_and_is_linked_from_the_header():
    option_set(key="About", value="## Who we are\n\nA **small** team.")
    response = Client().get("/about/")
    assert response.status_code == 200
    html = text(response)
    assert "<h2>Who we are</h2>" in html and "<strong>small</strong>" in html and framed(html)
    assert '<a href="/about/" id="nav-about">' in text(Client().get("/"))


def test_an_about_that_is_an_address_is_framed():
    option_set(key="About", value="https://about.example.com/us?a=1&b=2")
    html = text(Client().get("/about/"))
    assert '<iframe id="about-frame"' in html and 'src="https://about.example.com/us?a=1&amp;b=2"' in html


@pytest.mark.parametrize("link", ["javascript:alert(1)", "not a link", "ftp://chat.example.com"])
def test_a_chat_link_that_is_no_web_address_gives_no_page(link):
    option_set(key="ChatLink", value=link)
    assert Client().get("/chat/").status_code == 404
    assert 'id="nav-chat"' not in text(Client().get("/"))


def test_chat_frames_the_chat_link_and_the_header_links_it(alice):
    option_set(key="ChatLink", value="https://chat.example.com/#/?a=1")
    client = logged_in(alice)
    html = text(client.get("/chat/"))
    assert '<iframe id="chat-frame"' in html and 'src="https://chat.example.com/#/?a=1"' in html
    assert 'href="/chat/" id="nav-chat"' in text(client.get("/dashboard/"))
