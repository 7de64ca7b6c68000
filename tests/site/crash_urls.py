"""The site's URLs plus views that fail, to see the 404 and 500 answers through the whole stack."""

from django.http import Http404
from django.urls import path

from oneapi_site.urls import handler404, handler500  # noqa: F401
from oneapi_site.urls import urlpatterns as site_urlpatterns


def crash(request):
    raise RuntimeError("boom")


def missing(request):
    raise Http404("nothing here")


urlpatterns = [path("crash/", crash), path("api/crash/", crash), path("api/missing/", missing), *site_urlpatterns]
