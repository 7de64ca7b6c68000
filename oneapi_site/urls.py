from django.contrib import admin
from django.urls import include, path

from accounts.limits import critical_page
from oneapi_site import pages

# The console's login shares the sign-in pages' per-IP budget, so it is no side door for guessing passwords.
admin.site.login = critical_page(admin.site.login)
# The console's lists (logs, channels) need the width: its five models are one click away on the index page
# and in the breadcrumbs, so the side menu that took 300 px of a 1280 px screen goes.
admin.site.enable_nav_sidebar = False

handler404 = "oneapi_site.pages.not_found"
handler500 = "oneapi_site.pages.server_error"

urlpatterns = [
    path("favicon.ico", pages.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/", include("oneapi_site.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("accounts.pages.urls")),
    path("", include("billing.pages.urls")),
]
