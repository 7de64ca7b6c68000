from django.contrib import admin
from django.urls import include, path

from accounts import limits, turnstile

# The console's login is no side door: it shares the sign-in pages' budgets (per address and per account),
# and while Turnstile is asked it sends people to the sign-in page, which shows the widget.
admin.site.login = turnstile.console_login(limits.console_login(admin.site.login))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("oneapi_site.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("accounts.pages.urls")),
    path("", include("billing.pages.urls")),
]
