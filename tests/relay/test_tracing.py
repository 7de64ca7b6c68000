"""OpenTelemetry traces: a span per relay request with the GenAI semantic conventions and a child per upstream
attempt, read from the SDK's in-memory exporter; off unless the OTEL_* variables ask, and then the
opentelemetry packages are not even imported."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from billing.services import option_set
from oneapi_site import tracing
from tests.factories import ChannelFactory
from tests.helpers import consume_log
from tests.mock_upstream import MockUpstream
from tests.providers.vendor_harness import serve

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
ROOT = Path(__file__).resolve().parents[2]

backup_server = serve(MockUpstream)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.use(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.stop()


def _by_name(exporter):
    finished = exporter.get_finished_spans()
    requests = [s for s in finished if s.kind == SpanKind.SERVER]
    attempts = [s for s in finished if s.name == "upstream attempt"]
    return requests, attempts


@pytest.mark.django_db(transaction=True)
async def test_a_request_is_one_span_with_genai_attributes_and_a_child_for_its_call(client, world, spans):
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    log = await consume_log()
    (request,), (attempt,) = _by_name(spans)
    assert request.name == "chat gpt-4o-mini"
    assert request.attributes["gen_ai.operation.name"] == "chat"
    assert request.attributes["gen_ai.system"] == "openai"
    assert request.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert request.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert request.attributes["gen_ai.usage.input_tokens"] == log.prompt_tokens == 11
    assert request.attributes["gen_ai.usage.output_tokens"] == log.completion_tokens == 7
    assert request.attributes["oneapi.result"] == "2xx"
    assert attempt.parent.span_id == request.context.span_id
    assert attempt.context.trace_id == request.context.trace_id
    assert attempt.attributes["oneapi.channel.id"] == world.channel.pk
    assert attempt.attributes["oneapi.channel.type"] == 1
    assert attempt.attributes["oneapi.retry"] == 0
    assert attempt.attributes["oneapi.result"] == "ok"


@pytest.mark.django_db(transaction=True)
async def test_each_upstream_attempt_is_a_child_and_the_failed_one_says_why(client, world, spans, backup_server):
    backup_server.reset()
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    healthy = await sync_to_async(ChannelFactory)(name="healthy", base_url=backup_server.url,
                                                  models="gpt-4o-mini", priority=-1)
    world.upstream.then(status=503, error={"error": {"message": "overloaded", "type": "server_error"}})
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    (request,), attempts = _by_name(spans)
    assert [a.parent.span_id for a in attempts] == [request.context.span_id] * 2
    failed, answered = sorted(attempts, key=lambda a: a.attributes["oneapi.retry"])
    assert (failed.attributes["oneapi.channel.id"], failed.attributes["oneapi.retry"]) == (world.channel.pk, 0)
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["oneapi.result"] == "retryable"
    assert (answered.attributes["oneapi.channel.id"], answered.attributes["oneapi.retry"]) == (healthy.pk, 1)
    assert answered.attributes["oneapi.result"] == "ok"
    assert "sk-upstream-secret" not in str([dict(s.attributes) for s in spans.get_finished_spans()])


@pytest.mark.django_db(transaction=True)
async def test_a_refused_request_is_a_span_with_its_error(client, world, spans):
    response = await client.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"},
                                 headers=world.auth)
    assert response.status_code // 100 in (4, 5)
    (request,), attempts = _by_name(spans)
    assert attempts == []
    assert request.status.status_code == StatusCode.ERROR
    assert request.attributes["http.response.status_code"] == response.status_code


@pytest.mark.django_db(transaction=True)
async def test_no_span_is_made_while_tracing_is_off(client, world):
    exporter = InMemorySpanExporter()
    tracing.use(SimpleSpanProcessor(exporter))
    tracing.stop()
    assert not tracing.active
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("environment, wanted", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_traces_are_wanted_only_when_the_standard_variables_ask(monkeypatch, environment, wanted):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
                 "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert tracing.wanted() is wanted


def test_asked_for_without_the_exporter_installed_it_says_so_and_stays_off(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        tracing.start()
    assert not tracing.active
    assert "requirements-otel.txt" in caplog.text


def test_off_by_default_the_gateway_never_loads_the_tracing_sdk():
    """redis 8 imports OpenTelemetry's API for its own optional metrics when it is installed; the SDK's tracer
    and the exporter are ours alone to load, and stay out."""
    script = ("import sys, django; django.setup(); import oneapi_site.urls, relay.pipeline, relay.asgi; "
              "from oneapi_site import tracing; assert not tracing.active and tracing._tracer is None; "
              "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', "
              "'opentelemetry.exporter'))))")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["DJANGO_SETTINGS_MODULE"] = "oneapi_site.settings"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture
def otel_env(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
                 "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    tracing.stop()


def test_the_console_exporter_prints_spans_instead_of_sending_them_over_otlp(otel_env):
    """OTEL_TRACES_EXPORTER=console is a standard value: it went to OTLP at localhost:4318 all the same, with
    an export error in the log every few seconds (found from a fresh clone)."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    otel_env.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)  # not needed
    assert isinstance(tracing.exporter(), ConsoleSpanExporter)
    tracing.start()
    assert tracing.active


def test_an_exporter_this_gateway_does_not_ship_is_said_and_tracing_stays_off(otel_env, caplog):
    otel_env.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with caplog.at_level(logging.WARNING, logger="oneapi"):
        tracing.start()
    assert not tracing.active
    assert "OTEL_TRACES_EXPORTER" in caplog.text and "zipkin" in caplog.text
