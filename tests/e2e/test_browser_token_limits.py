"""In headless Chromium against a real gateway: a user whose account an admin limited sets a token's rate limits
and budget on the token page, is refused above the account's limit, and sees the token's limits and budget
listed and the account's budget on the dashboard."""

import uuid

import httpx
import pytest

from tests.e2e.conftest import screenshot

PASSWORD = "Browser-Pass-2026"


@pytest.fixture(scope="module")
def limited_user(gateway):
    """A new account with 60 requests a minute and US$5 a day, set by root through /api."""
    with httpx.Client(base_url=gateway.url, headers={"Authorization": gateway.access_token}, timeout=10) as admin:
        username = "b" + uuid.uuid4().hex[:8]
        assert admin.post("/api/user/", json={"username": username, "password": PASSWORD}).json()["success"]
        user = next(u for u in admin.get("/api/user/search", params={"keyword": username}).json()["data"]
                    if u["username"] == username)
        per_unit = 500_000  # one-api's QuotaPerUnit, the gateway's default
        answer = admin.put("/api/user/", json={"id": user["id"], "rpm_limit": 60, "budget_quota": 5 * per_unit,
                                               "budget_period": "day"}).json()
        assert answer["success"], answer
    return username


def test_a_user_sets_a_tokens_limits_and_budget_under_the_accounts(new_page, limited_user):
    page = new_page()
    page.goto("/login/")
    page.fill("#id_username", limited_user)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()

    page.goto("/token/new/")
    assert page.get_by_test_id("token-rpm-limit").input_value() == "60"  # starts at the account's limit
    page.fill("#id_name", "capped")
    page.check("#id_unlimited_quota")
    page.get_by_test_id("token-rpm-limit").fill("61")
    page.get_by_test_id("token-submit").click()
    page.wait_for_load_state()
    assert "The most allowed is 60" in page.get_by_test_id("error-rpm_limit").inner_text()

    page.get_by_test_id("token-rpm-limit").fill("30")
    page.get_by_test_id("token-concurrency-limit").fill("2")
    page.get_by_test_id("token-budget").fill("2")
    page.get_by_test_id("token-budget-period").select_option("day")
    screenshot(page, "token_form_limits")
    page.get_by_test_id("token-submit").click()
    page.wait_for_url("**/token/?created=*")
    limits = page.locator("[data-testid^=token-limits-]").first.inner_text()
    assert "30 requests a minute" in limits and "2 at once" in limits
    assert "$0 of $2 spent today, resets at" in limits
    screenshot(page, "tokens_limits")

    page.goto("/dashboard/")
    screenshot(page, "dashboard_limits")
    assert "$0 of $5 spent today, resets at" in page.get_by_test_id("dashboard-budget").inner_text()
    assert "60 requests a minute" in page.get_by_test_id("dashboard-limits").inner_text()
