"""Vendors' account endpoints, for balance queries, each in the vendor's own shape.

The answers follow what one-api reads (controller/channel-billing.go) and, for Moonshot, SiliconFlow and
DeepSeek, their documented balance APIs. Each endpoint checks the key where its vendor expects it (a Bearer header,
AIProxy's `Api-Key`, OpenAI-SB's `api_key` query) and answers a wrong one as the vendor does.
"""

from __future__ import annotations

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock

KEY = "sk-balance-test-key"

# CloseAI and AIGC2D read total_available, API2GPT total_remaining: they differ here to tell which is read.
CREDIT_GRANTS = {"object": "credit_summary", "total_granted": 20.0, "total_used": 7.5, "total_available": 12.5,
                 "total_remaining": 11.25}
OPENAI_SB = {"msg": "ok", "data": {"credit": "8.5200", "username": "sb-user"}}
AIPROXY = {"success": True, "message": "", "error_code": 0, "data": {"totalPoints": 66.6, "usedPoints": 3.4}}
MOONSHOT = {"code": 0, "data": {"available_balance": 49.58894, "voucher_balance": 46.58893, "cash_balance": 3.00001},
            "scode": "0x0", "status": True}
# https://docs.siliconflow.cn/cn/api-reference/userinfo/get-user-info: amounts as decimal strings.
SILICONFLOW = {"code": 20000, "message": "OK", "status": True,
               "data": {"id": "userid", "name": "username", "isAdmin": False, "balance": "0.88", "status": "normal",
                        "chargeBalance": "88.00", "totalBalance": "88.88"}}
# https://api-docs.deepseek.com/api/get-user-balance: one entry a currency the account holds.
DEEPSEEK_CNY = {"currency": "CNY", "total_balance": "110.00", "granted_balance": "10.00", "topped_up_balance": "100.00"}
DEEPSEEK_USD = {"currency": "USD", "total_balance": "12.50", "granted_balance": "0.00", "topped_up_balance": "12.50"}
DEEPSEEK = {"is_available": True, "balance_infos": [DEEPSEEK_CNY, DEEPSEEK_USD]}


class MockBalances(VendorMock):
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      None))
        bearer = request.headers.get("Authorization") == f"Bearer {KEY}"
        if request.path == "/sb-api/user/status":
            if request.query.get("api_key") != KEY:
                return web.json_response({"msg": "api_key 无效", "data": None})
            return web.json_response(OPENAI_SB)
        if request.path == "/api/report/getUserOverview":
            if request.headers.get("Api-Key") != KEY:
                return web.json_response({"success": False, "message": "Invalid API Key", "error_code": 401,
                                          "data": None})
            return web.json_response(AIPROXY)
        if not bearer:
            return web.json_response({"error": {"message": "Invalid Authentication",
                                                 "type": "invalid_authentication_error"}}, status=401)
        if request.path == "/dashboard/billing/credit_grants":
            return web.json_response(CREDIT_GRANTS)
        if request.path == "/v1/users/me/balance":
            return web.json_response(MOONSHOT)
        if request.path == "/v1/user/info":
            return web.json_response(SILICONFLOW)
        if request.path == "/user/balance":
            return web.json_response(DEEPSEEK)
        return web.json_response({"error": {"message": "not found"}}, status=404)
