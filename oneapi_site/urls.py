from django.contrib import admin
from django.urls import include, path

from accounts.limits import console_login

# The console's login shares the sign-in pages' budgets (per address and per account), so it is no side door
# for guessing passwords.
admin.site.login = console_login(admin.site.login)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("oneapi_site.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("accounts.pages.urls")),
    path("", include("billing.pages.urls")),
]
