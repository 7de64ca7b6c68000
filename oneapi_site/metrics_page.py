"""GET /metrics: the Prometheus exposition, for a scraper with METRICS_TOKEN or from METRICS_ALLOWED_IPS.

With neither set the page answers 404, as if it were not there, and the relay records nothing
(oneapi_site/metrics.py): an endpoint open to anyone would tell strangers the channels and models. Channel
health and the ledger's queue are read here, at scrape time, off the relay's path.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os

from django.conf import settings
from django.db import Error as DatabaseError
from django.http import Http404, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from billing.ledger import ledger
from oneapi_site import metrics
from providers import health
from providers.models import Channel

log = logging.getLogger("oneapi")


def allowed(request) -> bool:
    """The bearer token (compared in constant time) or an allowed address; never both required."""
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip().encode(),
                                                                         token.encode()):
        return True
    if settings.METRICS_ALLOWED_IPS:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in settings.METRICS_ALLOWED_IPS)
    return False


def page(request):
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS):
        raise Http404
    if not allowed(request):
        response = HttpResponse("Forbidden: send the metrics token as a bearer token.\n", status=403,
                                content_type="text/plain")
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(collected()), content_type=CONTENT_TYPE_LATEST)


def collected() -> CollectorRegistry:
    """The relay's series (every process's, in multiprocess mode) and the state read now."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return metrics.registry
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_state)
    return registry


class _State:
    """Gauges read at scrape time: each channel's health and balance, and the ledger's queue."""

    def describe(self):
        return []  # so registering reads nothing: the database is read at scrape time only

    def collect(self):
        enabled = GaugeMetricFamily("oneapi_channel_enabled", "1 when the channel takes requests.",
                                    labels=("channel", "name", "type"))
        auto = GaugeMetricFamily("oneapi_channel_auto_disabled", "1 when health checks took the channel out.",
                                 labels=("channel",))
        failures = GaugeMetricFamily("oneapi_channel_consecutive_failures",
                                     "Transient failures in a row on this instance.", labels=("channel",))
        tested = GaugeMetricFamily("oneapi_channel_last_test_timestamp_seconds", "When the channel was last tested.",
                                   labels=("channel",))
        balance = GaugeMetricFamily("oneapi_channel_balance", "The vendor account's balance as last read.",
                                    labels=("channel",))
        in_a_row = health.failures.snapshot()
        try:
            rows = list(Channel.objects.values("id", "name", "type", "status", "test_time", "balance"))
        except DatabaseError as exc:  # the relay's own series still go out; the channels' wait for the database
            log.warning("/metrics: the channels could not be read (%s)", type(exc).__name__)
            rows = []
        for row in rows:
            channel = str(row["id"])
            enabled.add_metric((channel, row["name"], str(row["type"])),
                               int(row["status"] == Channel.Status.ENABLED))
            auto.add_metric((channel,), int(row["status"] == Channel.Status.AUTO_DISABLED))
            failures.add_metric((channel,), in_a_row.get(row["id"], 0))
            tested.add_metric((channel,), row["test_time"])
            balance.add_metric((channel,), row["balance"])
        yield from (enabled, auto, failures, tested, balance)
        yield GaugeMetricFamily("oneapi_ledger_queue_depth", "Charges settled and not yet written.",
                                value=len(ledger.pending))
        yield GaugeMetricFamily("oneapi_ledger_parked", "Charges the database refused for good, since start.",
                                value=ledger.parked_count)


_state = _State()
metrics.registry.register(_state)
