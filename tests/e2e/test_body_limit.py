"""The server refuses an oversized body before buffering it (oneapi_site/body_limit.py), on a real Daphne.

Issue 8: a 500 MB POST to /v1/chat/completions without a key was read whole (resident memory peaked at
634 MB) before the relay's own 32 MB check and the 401. Each test here speaks HTTP/1.1 on a raw socket, so
it can see the answer arrive, and the server close the connection, while it still had body to send.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.e2e.servers import prepare_database, running_gateway

LIMITS = {"RELAY_MAX_BODY_MB": "3", "API_MAX_BODY_MB": "1", "WEB_MAX_BODY_MB": "1"}
MB = 1024 * 1024
# Any key: a body that names none is refused at its headers for that (the tests at the end); these name one.
KEY = "Authorization: Bearer sk-not-a-real-key"
PLAN = 64 * MB  # what each client means to send: far past every limit and every socket buffer
SOCKET_TIMEOUT = 30  # a bound on a failing test's wait, not a timing check


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("body-limit")
    with prepare_database(tmp, **LIMITS) as env, running_gateway(tmp, env) as gateway:
        yield gateway


def connect(gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=SOCKET_TIMEOUT)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes: status, headers and body."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body[: int(headers.get("content-length", len(body)))]


def send_until_closed(sock: socket.socket, *, chunked: bool) -> int:
    """Send body bytes until the plan is done or the server closes on us; returns how much got out."""
    piece = b"x" * 65536
    framed = b"10000\r\n" + piece + b"\r\n" if chunked else piece
    sent = 0
    try:
        while sent < PLAN:
            sock.sendall(framed)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def post_head(path: str, *headers: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: gateway", *headers]) + "\r\n\r\n").encode()


def test_a_huge_content_length_on_v1_is_refused_before_any_of_the_body_is_sent(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/v1/chat/completions", "Content-Type: application/json",
                               f"Content-Length: {500 * 1024 * MB}"))
        # Not one byte of body sent, and the answer is already there.
        status, headers, body = read_response(sock)
        assert status == 413
        assert headers["connection"] == "close"
        error = json.loads(body)["error"]
        assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
        assert "3 MB" in error["message"]
        # The server closed its end: what the client still had to send goes nowhere.
        assert send_until_closed(sock, chunked=False) < PLAN


def test_a_long_chunked_body_is_refused_once_past_the_limit_and_the_connection_closed(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/v1/chat/completions", "Content-Type: application/json", KEY,
                               "Transfer-Encoding: chunked"))
        sent = send_until_closed(sock, chunked=True)
        assert sent < PLAN, "the server read the whole chunked body"
        status, _, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("path", ["/api/user/login", "/api/token/", "/login/", "/admin/login/"])
def test_api_and_pages_answer_with_the_envelope_and_their_own_smaller_limit(gateway, path):
    with connect(gateway) as sock:
        sock.sendall(post_head(path, "Content-Type: application/json", "Transfer-Encoding: chunked"))
        assert send_until_closed(sock, chunked=True) < PLAN
        status, _, body = read_response(sock)
    assert status == 413
    assert json.loads(body) == {"success": False, "message": "The request body is larger than 1 MB."}


def test_the_refusal_speaks_the_visitors_language(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/api/user/register", "Content-Type: application/json", "Accept-Language: zh-CN",
                               f"Content-Length: {2 * MB}"))
        status, _, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["message"] == "请求内容超过 1 MB。"


def test_a_client_that_asks_first_is_told_no_without_a_100_continue(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/v1/audio/transcriptions", "Content-Type: multipart/form-data; boundary=x",
                               "Expect: 100-continue", f"Content-Length: {4 * MB}"))
        status, _, _ = read_response(sock)
    assert status == 413


def test_bodies_within_the_limits_still_reach_the_application(gateway):
    just_under = b'{"model": "gpt-4o-mini", "pad": "' + b"x" * (3 * MB - 64) + b'"}'
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=just_under,
                          headers={"Content-Type": "application/json", "Authorization": "Bearer sk-not-a-real-key"},
                          timeout=SOCKET_TIMEOUT)
    assert response.status_code == 401  # read whole and handed to the relay, which knows no such key
    assert response.json()["error"]["code"] == "invalid_api_key"

    login = json.dumps({"username": "nobody", "password": "p" * (MB - 100)}).encode()

    def chunks():  # no Content-Length: httpx sends it chunked
        for at in range(0, len(login), 65536):
            yield login[at:at + 65536]

    response = httpx.post(f"{gateway.url}/api/user/login", content=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=SOCKET_TIMEOUT)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code != 413
    assert response.json()["success"] is False


def relays_own_answer_without_a_key(gateway) -> dict:
    """What the relay itself answers a request that names no key (a bodiless one reaches it)."""
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=SOCKET_TIMEOUT)
    assert response.status_code == 401 and response.headers["x-oneapi-request-id"]
    error = response.json()["error"]
    error["message"] = error["message"].rsplit(" (request id: ", 1)[0]
    return error


@pytest.mark.parametrize("framing", [f"Content-Length: {2 * MB}", "Transfer-Encoding: chunked"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/audio/transcriptions", "/v1/no/such/route",
                                  "/dashboard/billing/usage"])
def test_a_body_for_the_relay_without_a_key_gets_the_relays_401_before_it_is_sent(gateway, path, framing):
    with connect(gateway) as sock:
        sock.sendall(post_head(path, "Content-Type: application/json", framing))
        # Not one byte of body sent, and the answer is already there.
        status, headers, body = read_response(sock)
        assert status == 401
        assert headers["connection"] == "close" and headers["access-control-allow-origin"] == "*"
        assert json.loads(body)["error"] == relays_own_answer_without_a_key(gateway)
        assert send_until_closed(sock, chunked=framing.endswith("chunked")) < PLAN


def test_a_keyless_client_that_asks_first_is_told_no_without_a_100_continue(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/v1/chat/completions", "Content-Type: application/json", "Expect: 100-continue",
                               f"Content-Length: {MB}"))
        status, _, body = read_response(sock)
    assert status == 401
    assert json.loads(body)["error"]["code"] == "missing_api_key"


def test_a_keyless_body_for_the_messages_api_is_refused_in_anthropics_shape(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/v1/messages?beta=true", "Content-Type: application/json", f"Content-Length: {MB}"))
        status, _, body = read_response(sock)
    assert status == 401
    assert json.loads(body)["error"] == {"type": "authentication_error",
                                         "message": "No API key provided: send Authorization: Bearer sk-... or "
                                                    "x-api-key: sk-..."}


def test_a_keyless_body_for_geminis_api_is_refused_in_googles_shape(gateway):
    with connect(gateway) as sock:
        sock.sendall(post_head("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                               "Content-Type: application/json", f"Content-Length: {MB}"))
        status, _, body = read_response(sock)
    assert status == 401
    assert json.loads(body)["error"] == {"code": 401, "status": "UNAUTHENTICATED",
                                         "message": "No API key provided: send x-goog-api-key: sk-... (or "
                                                    "Authorization: Bearer sk-..., or ?key=sk-...)"}


def test_geminis_api_is_served_by_the_relay_with_a_key_in_the_query(gateway):
    response = httpx.post(f"{gateway.url}/v1beta/models/gemini-2.5-flash:generateContent?key=sk-notarealkey",
                          json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=SOCKET_TIMEOUT)
    assert response.status_code == 401 and response.headers["x-oneapi-request-id"]
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert "Invalid API key" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers, query", [
    ({"Authorization": "Bearer sk-not-a-real-key"}, ""),
    ({"Authorization": "sk-not-a-real-key"}, ""),
    ({"x-api-key": "sk-ant-not-a-real-key"}, ""),
    ({"x-goog-api-key": "AIza-not-a-real-key"}, ""),
    ({"api-key": "azure-not-a-real-key"}, ""),
    ({}, "?key=AIza-not-a-real-key"),
])
def test_a_body_that_names_a_key_anywhere_reaches_the_relay_which_judges_it(gateway, headers, query):
    body = b'{"model": "gpt-4o-mini", "pad": "' + b"x" * MB + b'"}'
    response = httpx.post(f"{gateway.url}/v1/chat/completions{query}", content=body, timeout=SOCKET_TIMEOUT,
                          headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 401
    assert response.headers["x-oneapi-request-id"]  # the relay's answer, given once the body was read


def test_a_preflight_and_a_bodiless_request_without_a_key_reach_the_relay(gateway):
    preflight = httpx.options(f"{gateway.url}/v1/chat/completions", timeout=SOCKET_TIMEOUT,
                              headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    models = httpx.get(f"{gateway.url}/v1/models", timeout=SOCKET_TIMEOUT)
    assert models.status_code == 401 and models.headers["x-oneapi-request-id"]
    assert models.json()["error"]["code"] == "missing_api_key"
