"""Static files as Django serves them, with a path that climbs out of the static folders a plain 404."""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404


class StaticFiles(ASGIStaticFilesHandler):
    """Django raises SuspiciousFileOperation for `/static/../../etc/passwd` (Daphne decodes `%2e%2e` into
    the same) and turns only Http404 into an answer, so that was a 500 with a traceback naming the
    server's folders in the log (issue 8)."""

    def serve(self, request):
        try:
            return super().serve(request)
        except SuspiciousFileOperation:
            raise Http404("no such static file") from None
