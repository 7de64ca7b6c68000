from django.contrib import admin
from django.urls import include, path

from accounts import limits, turnstile
from billing.console_dashboard import with_dashboard
from oneapi_site import metrics_page, pages

# The console's login is no side door: it shares the sign-in pages' budgets (per address and per account),
# and while Turnstile is asked it sends people to the sign-in page, which shows the widget.
admin.site.login = turnstile.console_login(limits.console_login(admin.site.login))
# The console's lists (logs, channels) need the width: its five models are one click away on the index page
# and in the breadcrumbs, so the side menu that took 300 px of a 1280 px screen goes.
admin.site.enable_nav_sidebar = False
# The front page shows the operator dashboard above the models (billing/console_dashboard.py).
admin.site.index = with_dashboard(admin.site.index)
admin.site.index_template = "admin/oneapi_index.html"

handler404 = "oneapi_site.pages.not_found"
handler500 = "oneapi_site.pages.server_error"

urlpatterns = [
    path("favicon.ico", pages.favicon, name="favicon"),
    path("metrics", metrics_page.page, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("oneapi_site.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("accounts.pages.urls")),
    path("", include("billing.pages.urls")),
]
