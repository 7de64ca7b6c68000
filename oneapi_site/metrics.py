"""Prometheus series of the relay and the ledger, and the one-line hooks that move them.

The pipeline calls these hooks at its own steps (`recorded` around a request, `attempt` around each upstream
call, `routed`, `charged`); the ledger's writer calls `ledger_flushed` and `ledger_failed`. A request's
labels live in a context variable for as long as it runs, so no hook needs more than what its caller holds.

Recording is on only while someone can read it: when /metrics is open (METRICS_TOKEN or METRICS_ALLOWED_IPS,
oneapi_site/metrics_page.py) or traces are exported (oneapi_site/tracing.py). Off, each hook is one attribute
test. Label values are bounded: a model only when routing knows it (a client may send any name), else "other";
channels by id; groups are the operator's.

Daphne serves from one process per container (oneapi_site/serve.py), so the default in-process registry is
what a scrape reads. With PROMETHEUS_MULTIPROC_DIR set before start, prometheus_client keeps counters and
histograms in files there and a scrape adds up every process's (metrics_page.collected).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram

from oneapi_site import tracing

tracing.start()
registry = CollectorRegistry(auto_describe=True)

# Seconds. Upstream calls run from a fraction of a second to minutes (long generations).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
# The gateway's own share of a request: a few milliseconds when all is well.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

REQUESTS = Counter("oneapi_requests", "Relay requests answered, by status class.",
                   ("model", "channel", "group", "protocol", "status"), registry=registry)
TOKENS = Counter("oneapi_tokens", "Tokens billed, by kind (prompt, completion, cached).",
                 ("model", "channel", "kind"), registry=registry)
QUOTA = Counter("oneapi_quota_charged", "Quota charged for answers.", ("model", "channel"), registry=registry)
UPSTREAM_LATENCY = Histogram("oneapi_upstream_latency_seconds", "One upstream call, to its answer's end.",
                             ("model", "channel"), buckets=LATENCY_BUCKETS, registry=registry)
FIRST_TOKEN = Histogram("oneapi_time_to_first_token_seconds", "From a streamed call's start to its first bytes.",
                        ("model", "channel"), buckets=LATENCY_BUCKETS, registry=registry)
OVERHEAD = Histogram("oneapi_gateway_overhead_seconds", "A request's time in the relay less its upstream calls.",
                     buckets=OVERHEAD_BUCKETS, registry=registry)
ATTEMPTS = Counter("oneapi_upstream_attempts", "Upstream calls, by result (ok, retryable, failed).",
                   ("channel", "result"), registry=registry)
FAILOVERS = Counter("oneapi_failovers", "Requests sent on to another channel after one failed.",
                    ("model", "channel"), registry=registry)
REFUSALS = Counter("oneapi_refusals", "Requests refused by a rate limit or budget (429).",
                   ("code", "scope"), registry=registry)
LEDGER_FLUSH = Histogram("oneapi_ledger_flush_seconds", "One batch of charges written.",
                         buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5), registry=registry)
LEDGER_WRITTEN = Counter("oneapi_ledger_charges_written", "Charges written to the database.", registry=registry)
LEDGER_FAILURES = Counter("oneapi_ledger_write_failures",
                          "Batches the database could not take (retried), and charges it refused (parked).",
                          ("kind",), registry=registry)
CACHE_RELOADS = Counter("oneapi_cache_reloads", "Relay cache loads from the database.", ("kind", "result"),
                        registry=registry)

REFUSAL_CODES = frozenset({"rate_limit_exceeded", "budget_exceeded", "model_capacity_exceeded"})

# Whether a scrape can read the series (set from the settings; tests switch it).
exposed = bool(settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS)


class _Request:
    """One relay request's labels and timings, as its steps learn them."""

    __slots__ = ("protocol", "group", "model", "channel", "stream", "started", "upstream", "attempts",
                 "attempt_at", "first_byte_seen", "refusal_scope", "span", "attempt_span")

    def __init__(self, protocol: str, group: str) -> None:
        self.protocol, self.group = protocol, group
        self.model, self.channel, self.stream = "other", "none", False
        self.started = time.perf_counter()
        self.upstream = 0.0
        self.attempts = 0
        self.attempt_at = 0.0
        self.first_byte_seen = False
        self.refusal_scope = "unknown"
        self.span = self.attempt_span = None


_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("oneapi_metrics_request", default=None)


_children: dict[tuple, object] = {}


def _child(metric, *labels):
    """The series of `metric` for `labels`; prometheus_client's labels() costs about as much as the
    increment itself (it locks and checks), so each series is looked up once."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


def recorded(relay):
    """Wrap the pipeline's relay_request: one request counted (and traced) whatever its end."""

    @functools.wraps(relay)
    async def wrapper(**kwargs):
        if not (exposed or tracing.active):
            return await relay(**kwargs)
        request = _Request(kwargs.get("client_protocol") or "openai", kwargs["caller"].user.group)
        if tracing.active:
            request.span = tracing.request_span(mode=kwargs.get("mode", ""), protocol=request.protocol)
        reset = _current.set(request)
        status = "2xx"
        try:
            return await relay(**kwargs)
        except asyncio.CancelledError:
            status = "cancelled"  # the client left
            raise
        except Exception as exc:  # a RelayError (duck-typed: billing imports this module, never the relay)
            code = getattr(exc, "status", 500)
            status = _status_class(code if isinstance(code, int) else 500)
            if code == 429 and getattr(exc, "code", None) in REFUSAL_CODES and exposed:
                _child(REFUSALS, exc.code, request.refusal_scope).inc()
            if request.span is not None:
                tracing.failed(request.span, exc)
            raise
        finally:
            _current.reset(reset)
            _finish(request, status)

    return wrapper


def _finish(request: _Request, status: str) -> None:
    if request.span is not None:
        tracing.end(request.span, status)
    if not exposed:
        return
    _child(REQUESTS, request.model, request.channel, request.group, request.protocol, status).inc()
    if request.attempts:
        OVERHEAD.observe(max(0.0, time.perf_counter() - request.started - request.upstream))


def routed(*, known_models, model: str, stream: bool, mode: str) -> None:
    """The request's model is read and a route found: `known_models` are routing's (a bounded label)."""
    request = _current.get()
    if request is None:
        return
    request.model = model if model in known_models else "other"
    request.stream = stream
    if request.span is not None:
        tracing.routed(request.span, model=model, mode=mode, system=known_models.get(model, ""))


def record_refusal(scope: str) -> None:
    """A limit refuses the request (the limits say which: token, user, ip, model...); counted when the 429
    reaches the pipeline's error path."""
    request = _current.get()
    if request is not None:
        request.refusal_scope = scope


async def attempt(call_channel, *, channel, **kwargs):
    """One upstream call through `call_channel`, timed; a second one in a request is a failover."""
    request = _current.get()
    if request is None:
        return await call_channel(channel=channel, **kwargs)
    if request.attempts and exposed:
        _child(FAILOVERS, request.model, request.channel).inc()
    request.attempts += 1
    request.channel = str(channel.id)
    if request.span is not None:
        request.attempt_span = tracing.attempt_span(request.span, channel=channel, retry=request.attempts - 1,
                                                    mapped=channel.model_mapping.get(kwargs["call"].model))
    started = request.attempt_at = time.perf_counter()
    request.first_byte_seen = False
    result = "failed"
    try:
        outcome = await call_channel(channel=channel, **kwargs)
        result = "ok" if outcome.interrupted is None else "failed"
        return outcome
    except Exception as exc:
        result = "retryable" if getattr(exc, "retryable", False) else "failed"
        if request.attempt_span is not None:
            tracing.failed(request.attempt_span, exc)
        raise
    finally:
        elapsed = time.perf_counter() - started
        request.upstream += elapsed
        if request.attempt_span is not None:
            tracing.end(request.attempt_span, result)
            request.attempt_span = None
        if exposed:
            _child(ATTEMPTS, request.channel, result).inc()
            if result != "retryable":
                _child(UPSTREAM_LATENCY, request.model, request.channel).observe(elapsed)


def answer_started() -> None:
    """The answer's first bytes go to the client: for a stream, its time to first token."""
    request = _current.get()
    if request is None or request.first_byte_seen or not request.attempt_at:
        return
    request.first_byte_seen = True
    if request.stream and exposed:
        _child(FIRST_TOKEN, request.model, request.channel).observe(time.perf_counter() - request.attempt_at)


def charged(*, channel_id: int, tokens, quota: int) -> None:
    """The answer's bill: tokens by kind and the quota, on the channel that answered."""
    request = _current.get()
    if request is None:
        return
    if request.span is not None:
        tracing.usage(request.span, input_tokens=tokens.prompt, output_tokens=tokens.completion)
    if not exposed:
        return
    channel = str(channel_id)
    _child(TOKENS, request.model, channel, "prompt").inc(tokens.prompt)
    _child(TOKENS, request.model, channel, "completion").inc(tokens.completion)
    if tokens.cached:
        _child(TOKENS, request.model, channel, "cached").inc(tokens.cached)
    _child(QUOTA, request.model, channel).inc(quota)


def ledger_flushed(started: float, written: int) -> None:
    """A batch went to the database (the writer thread): `started` from time.perf_counter()."""
    if exposed:
        LEDGER_FLUSH.observe(time.perf_counter() - started)
        LEDGER_WRITTEN.inc(written)


def ledger_failed(kind: str) -> None:
    """'unreachable': a batch stays queued for the next try; 'parked': a charge the database refuses."""
    if exposed:
        _child(LEDGER_FAILURES, kind).inc()


def cache_loaded(kind: str, ok: bool = True) -> None:
    """The relay cache read channels, a token or a user from the database."""
    if exposed:
        _child(CACHE_RELOADS, kind, "ok" if ok else "failed").inc()
