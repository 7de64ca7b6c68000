"""On the real server: a path climbing out of /static/ is a 404, and the log holds no traceback (issue 8)."""

import socket

import pytest


def raw_get(gateway, target: str) -> bytes:
    """The request target exactly as written (an HTTP client library would clean the dots away)."""
    port = int(gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("target", ["/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                    "/static/..%2f..%2f..%2fetc/passwd"])
def test_a_climbing_static_path_is_a_404_on_the_real_server(gateway, target):
    answer = raw_get(gateway, target)
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b"root:" not in answer
    log = gateway.log.read_text(errors="replace")
    assert "Traceback" not in log and "SuspiciousFileOperation" not in log
