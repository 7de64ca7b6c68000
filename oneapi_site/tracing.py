"""OpenTelemetry traces of relay requests, when the operator asks for them.

On only when the standard variables ask (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
or OTEL_TRACES_EXPORTER other than "none") and the packages of requirements-otel.txt are installed;
OTEL_TRACES_EXPORTER picks OTLP/HTTP (the default) or the console. Off, the
opentelemetry packages are never imported and oneapi_site/metrics.py skips every call here.

A relay request is one span named as the GenAI semantic conventions name it ("chat gpt-4o"), with
gen_ai.system, gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model and the token usage; each
upstream call is a child span with the channel's id and type, its result and which retry it was. The exporter
reads the rest of its settings (headers, protocol, service name) from the standard OTEL_* variables.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("oneapi")

active = False
_tracer = None

# The gateway's modes as GenAI's operation names.
OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}


def wanted() -> bool:
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(exporter or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def start() -> None:
    """Export spans when the environment asks; a missing package or an exporter not shipped here is said once,
    not raised."""
    if not wanted():
        return
    chosen = exporter()
    if chosen is None:
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    use(BatchSpanProcessor(chosen))


# OTEL_TRACES_EXPORTER's values this gateway ships (the SDK's own autoconfiguration is not used: it would
# load every installed exporter's entry point at start).
EXPORTERS = ("otlp", "console")


def exporter():
    """The span exporter OTEL_TRACES_EXPORTER names (otlp when unset), or None after a warning."""
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    name = names[0] if names else "otlp"
    if name not in EXPORTERS or len(names) > 1:
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (one of: %s); no traces are exported",
                    ",".join(names), ", ".join(EXPORTERS))
        return None
    try:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    except ImportError:
        log.warning("OpenTelemetry is configured (OTEL_*) but its packages are not installed: "
                    "pip install -r requirements-otel.txt; no traces are exported")
        return None


def use(processor) -> None:
    """Send spans through `processor` (tests pass the SDK's SimpleSpanProcessor over an in-memory exporter)."""
    global _tracer, active
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       "oneapi")}))
    provider.add_span_processor(processor)
    _tracer = provider.get_tracer("oneapi.relay")
    active = True


def stop() -> None:
    global _tracer, active
    _tracer, active = None, False


def request_span(*, mode: str, protocol: str):
    from opentelemetry.trace import SpanKind

    operation = OPERATIONS.get(mode, mode)
    return _tracer.start_span(operation, kind=SpanKind.SERVER, attributes={
        "gen_ai.operation.name": operation, "oneapi.client_protocol": protocol})


def routed(span, *, model: str, mode: str, system: str) -> None:
    operation = OPERATIONS.get(mode, mode)
    span.update_name(f"{operation} {model}")
    span.set_attribute("gen_ai.request.model", model)
    if system:
        span.set_attribute("gen_ai.system", system)


def attempt_span(parent, *, channel, retry: int, mapped: str | None):
    from opentelemetry import trace

    attributes = {"oneapi.channel.id": channel.id, "oneapi.channel.type": channel.type, "oneapi.retry": retry}
    span = _tracer.start_span("upstream attempt", context=trace.set_span_in_context(parent),
                              kind=trace.SpanKind.CLIENT, attributes=attributes)
    parent.set_attribute("gen_ai.response.model", mapped or parent.attributes.get("gen_ai.request.model", ""))
    return span


def usage(span, *, input_tokens: int, output_tokens: int) -> None:
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)


def failed(span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    status = getattr(exc, "status", None)
    if isinstance(status, int):
        span.set_attribute("http.response.status_code", status)
    span.set_attribute("error.type", getattr(exc, "code", None) or type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, getattr(exc, "message", "")[:200]))


def end(span, result: str) -> None:
    span.set_attribute("oneapi.result", result)
    span.end()
