"""Reading GET /metrics as Prometheus does: the exposition text parsed into samples."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oneapi_site import metrics

TOKEN = "scrape-secret-123"


@pytest.fixture
def metrics_on(settings, monkeypatch):
    """/metrics open to the bearer TOKEN, and the relay recording."""
    settings.METRICS_TOKEN = TOKEN
    monkeypatch.setattr(metrics, "exposed", True)


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def value(self, series: str, /, **labels) -> float:
        """The sum of the samples of `series` whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.samples
                   if s.name == series and all(s.labels.get(k) == v for k, v in labels.items()))

    def labels(self, name: str) -> list[dict]:
        return [s.labels for s in self.samples if s.name == name]


async def scrape(client) -> Scrape:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
