import pytest


@pytest.mark.django_db
def test_api_requests_over_the_global_limit_get_429(client, settings):
    settings.GLOBAL_API_RATE_LIMIT = 3
    ip = "203.0.113.77"
    statuses = [client.get("/api/status", REMOTE_ADDR=ip).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Another address has its own budget.
    assert client.get("/api/status", REMOTE_ADDR="203.0.113.78").status_code == 200
