"""one-api's own front end (web/default) in front of a real gateway: each page's calls as that UI makes them.

Every call below is written from songquanpeng/one-api's web/default/src (the file is named at each step): the
method, the path with its query, the JSON body with one-api's field types (numbers as numbers, options as
strings, models as comma text), then what the page reads from the answer. The client is the browser: axios
with the session cookie from /api/user/login, no CSRF token, `Sec-Fetch-Site: same-origin` on every request
and `Origin` on writes, as Chromium sends them to the page's own origin.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import openai
import pytest

from tests.e2e.servers import prepare_database, running_gateway

ITEMS_PER_PAGE = 10  # web/default/src/constants/common.constant.js
NEW_PASSWORD = "root-" + uuid.uuid4().hex[:12]


class Page:
    """The UI's axios instance (helpers/api.js) in a same-origin browser tab, with its own cookie jar."""

    def __init__(self, url: str, *, site: str = "same-origin", origin: str | None = None):
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30, headers={"Accept": "application/json, text/plain, */*"})
        self.site, self.origin = site, url if origin is None else origin

    def send(self, method: str, path: str, body=None) -> httpx.Response:
        headers = {"Sec-Fetch-Site": self.site, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
        if method != "GET":
            headers["Origin"] = self.origin  # Chromium sends Origin with every non-GET fetch
        content = None if body is None else json.dumps(body)
        if content is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(method, path, content=content, headers=headers)

    def call(self, method: str, path: str, body=None) -> dict:
        """The envelope the page reads; it shows `message` when success is false, so that is a failure here."""
        response = self.send(method, path, body)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        answer = response.json()
        assert answer["success"] is True, (method, path, answer)
        return answer

    def data(self, method: str, path: str, body=None):
        return self.call(method, path, body)["data"]


def timestamp2string(ts: float) -> str:
    """helpers/utils.js's timestamp2string: local 'YYYY-MM-DD HH:MM:SS' (the tab's time zone is the test's)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def date_parse_seconds(text: str) -> float:
    """`Date.parse(text) / 1000` for timestamp2string's format."""
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webui")
    with prepare_database(tmp) as env, running_gateway(tmp, env) as server:
        yield server


@pytest.fixture(scope="module")
def root(gateway):
    """LoginForm.js: root/123456 goes to /user/edit, where EditUser.js (no id) PUTs the whole self with a password."""
    page = Page(gateway.url)
    user = page.data("POST", "/api/user/login", {"username": "root", "password": "123456"})
    assert user["role"] == 100 and user["username"] == "root"
    me = page.data("GET", "/api/user/self")
    page.call("PUT", "/api/user/self", {**me, "password": NEW_PASSWORD})  # loadUser() blanked it; root typed one
    return page


@pytest.fixture(scope="module")
def upstream_url(upstream_server):
    upstream_server.reset()  # the session's mock: another module may have left it refusing or failing
    return upstream_server.url


def register_and_login(gateway, username: str, *, aff_code=None) -> Page:
    """RegisterForm.js posts its inputs with aff_code null (no invite), LoginForm.js signs in."""
    page = Page(gateway.url)
    page.call("POST", "/api/user/register?turnstile=", {
        "username": username, "password": "s3cret-pass", "password2": "s3cret-pass", "email": "",
        "verification_code": "", "aff_code": aff_code})
    assert page.data("POST", "/api/user/login", {"username": username, "password": "s3cret-pass"})["role"] == 1
    return page


def test_root_signs_in_with_the_password_the_edit_page_set(gateway, root):
    assert Page(gateway.url).send("POST", "/api/user/login",
                                  {"username": "root", "password": "123456"}).json()["success"] is False
    Page(gateway.url).call("POST", "/api/user/login", {"username": "root", "password": NEW_PASSWORD})
    status = root.data("GET", "/api/status")  # App.js
    assert isinstance(status["quota_per_unit"], (int, float)) and isinstance(status["start_time"], int)


# --- Channels: components/ChannelsTable.js, pages/Channel/EditChannel.js ------------------------------------

def channel_body(name: str, base_url: str, models: list[str]) -> dict:
    """EditChannel.js submit() for a new channel: originInputs, models and groups joined, config as JSON text."""
    inputs = {"name": name, "type": 1, "key": "sk-upstream-" + name, "base_url": base_url, "other": "",
              "model_mapping": "", "system_prompt": "", "models": models, "groups": ["default"]}
    config = {"region": "", "sk": "", "ak": "", "user_id": "", "vertex_ai_project_id": "", "vertex_ai_adc": ""}
    return {**inputs, "models": ",".join(inputs["models"]), "group": ",".join(inputs["groups"]),
            "config": json.dumps(config)}


def test_the_channels_pages_create_read_page_edit_test_and_delete(root, upstream_url):
    assert isinstance(root.data("GET", "/api/models"), dict)  # helpers/utils.js loadChannelModels
    assert all(isinstance(m["id"], str) for m in root.data("GET", "/api/channel/models"))
    assert "default" in root.data("GET", "/api/group/")
    for i in range(ITEMS_PER_PAGE + 1):
        root.call("POST", "/api/channel/", channel_body(f"webui-{i}", upstream_url + "/", ["gpt-4o-mini", "gpt-4o"]))

    first, second = root.data("GET", "/api/channel/?p=0"), root.data("GET", "/api/channel/?p=1")
    assert len(first) == ITEMS_PER_PAGE and len(second) >= 1
    assert not {c["id"] for c in first} & {c["id"] for c in second}
    listed = {c["name"]: c for c in first + second}
    channel = listed["webui-0"]
    assert channel["models"].split(",") == ["gpt-4o-mini", "gpt-4o"]  # processChannelData splits the text
    assert isinstance(channel["created_time"], int) and abs(channel["created_time"] - time.time()) < 600
    assert isinstance(channel["priority"], int) and isinstance(channel["weight"], int)

    # EditChannel.js loadChannel(): models and group split, mapping pretty-printed, config parsed; then PUT it all.
    data = root.data("GET", f"/api/channel/{channel['id']}")
    data["models"] = data["models"].split(",") if data["models"] else []
    data["groups"] = data["group"].split(",") if data["group"] else []
    config = json.loads(data["config"]) if data.get("config") else {}
    data.update(name="webui-renamed", models=",".join(data["models"] + ["gpt-4.1"]),
                group=",".join(data["groups"]), config=json.dumps(config), id=channel["id"])
    root.call("PUT", "/api/channel/", data)
    again = root.data("GET", f"/api/channel/{channel['id']}")
    assert again["name"] == "webui-renamed" and again["models"].endswith(",gpt-4.1")

    # manageChannel(): numbers as parseInt makes them
    for change in ({"status": 2}, {"status": 1}, {"priority": 5}, {"weight": 3}):
        root.call("PUT", "/api/channel/", {"id": channel["id"], **change})
    again = root.data("GET", f"/api/channel/{channel['id']}")
    assert (again["status"], again["priority"], again["weight"]) == (1, 5, 3)

    tested = root.call("GET", f"/api/channel/test/{channel['id']}?model=gpt-4o-mini")  # testChannel()
    assert isinstance(tested["time"], (int, float))
    assert [c["id"] for c in root.data("GET", "/api/channel/search?keyword=webui-renamed")] == [channel["id"]]
    balance = root.call("GET", f"/api/channel/update_balance/{channel['id']}/")  # updateChannelBalance()
    assert balance["balance"] == pytest.approx(100 - 12.34)

    root.call("DELETE", f"/api/channel/{channel['id']}/")
    assert channel["id"] not in {c["id"] for c in root.data("GET", "/api/channel/search?keyword=webui")}
    root.call("PUT", "/api/channel/", {"id": listed["webui-1"]["id"], "status": 2})
    assert root.data("DELETE", "/api/channel/disabled") == 1  # deleteAllDisabledChannels()


# --- Tokens: components/TokensTable.js, pages/Token/EditToken.js ---------------------------------------------

def test_a_new_user_creates_pages_edits_copies_and_deletes_tokens(gateway, root, upstream_url):
    root.call("POST", "/api/channel/", channel_body("webui-tokens", upstream_url, ["gpt-4o-mini"]))
    erin = register_and_login(gateway, "erin-" + uuid.uuid4().hex[:6])
    assert "gpt-4o-mini" in erin.data("GET", "/api/user/available_models")
    for i in range(ITEMS_PER_PAGE):
        # EditToken.js originInputs for a new token: remain_quota parseInt'd, models [] joined to "".
        erin.call("POST", "/api/token/", {"name": f"t{i}", "remain_quota": 500000, "expired_time": -1,
                                          "unlimited_quota": False, "models": "", "subnet": ""})
    # A token with an expiry picked in the form: Math.ceil(Date.parse(expired_time) / 1000).
    expiry = timestamp2string(time.time() + 30 * 24 * 3600)
    erin.call("POST", "/api/token/", {"name": "expiring", "remain_quota": 500000,
                                      "expired_time": int(date_parse_seconds(expiry)), "unlimited_quota": True,
                                      "models": "gpt-4o-mini", "subnet": ""})

    first = erin.data("GET", "/api/token/?p=0&order=")
    second = erin.data("GET", "/api/token/?p=1&order=")
    tokens = {t["name"]: t for t in first + second}
    assert len(first) == ITEMS_PER_PAGE and len(tokens) == ITEMS_PER_PAGE + 2  # the signup's default token too
    expiring = tokens["expiring"]
    assert expiring["expired_time"] == int(date_parse_seconds(expiry))  # unix seconds, as the page renders them
    assert isinstance(expiring["created_time"], int) and abs(expiring["created_time"] - time.time()) < 600

    # onCopy(): `sk-${key}` from the list is the key a client uses.
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-" + expiring["key"], max_retries=0)
    assert "gpt-4o-mini" in {m.id for m in sdk.models.list()}  # a new user has no quota to chat with

    # loadToken(): expired_time to text and models split; submit() turns them back and PUTs the rest as read.
    data = erin.data("GET", f"/api/token/{expiring['id']}")
    data["expired_time"] = timestamp2string(data["expired_time"])
    data["models"] = data["models"].split(",") if data["models"] else []
    data.update(name="renamed", remain_quota=int(data["remain_quota"]),
                expired_time=int(date_parse_seconds(data["expired_time"])), models=",".join(data["models"]),
                id=expiring["id"])
    erin.call("PUT", "/api/token/", data)
    assert erin.data("GET", f"/api/token/{expiring['id']}")["name"] == "renamed"

    # manageToken(): status only, then delete.
    assert erin.data("PUT", "/api/token/?status_only=true", {"id": expiring["id"], "status": 2})["status"] == 2
    assert erin.data("PUT", "/api/token/?status_only=true", {"id": expiring["id"], "status": 1})["status"] == 1
    assert [t["id"] for t in erin.data("GET", "/api/token/search?keyword=renamed")] == [expiring["id"]]
    erin.call("DELETE", f"/api/token/{expiring['id']}/")
    assert erin.data("GET", "/api/token/search?keyword=renamed") == []


# --- Redemption codes and top-up: components/RedemptionsTable.js, pages/Redemption/EditRedemption.js, TopUp ---

def test_root_issues_redemption_codes_that_a_new_user_tops_up_with(gateway, root):
    keys = root.data("POST", "/api/redemption/", {"name": "webui-gift", "quota": 100000, "count": 2})
    assert len(keys) == 2 and all(isinstance(k, str) and k for k in keys)
    listed = root.data("GET", "/api/redemption/?p=0")
    code = next(r for r in listed if r["key"] == keys[0])
    assert isinstance(code["created_time"], int) and code["quota"] == 100000

    data = root.data("GET", f"/api/redemption/{code['id']}")
    data.update(name="webui-renamed", count=int(data.get("count", 1) or 1), quota=200000, id=code["id"])
    root.call("PUT", "/api/redemption/", data)
    assert root.data("GET", f"/api/redemption/{code['id']}")["quota"] == 200000
    assert root.data("PUT", "/api/redemption/?status_only=true", {"id": code["id"], "status": 2})["status"] == 2
    assert root.data("PUT", "/api/redemption/?status_only=true", {"id": code["id"], "status": 1})["status"] == 1
    assert code["id"] in {r["id"] for r in root.data("GET", "/api/redemption/search?keyword=webui-renamed")}

    finn = register_and_login(gateway, "finn-" + uuid.uuid4().hex[:6])
    before = finn.data("GET", "/api/user/self")["quota"]
    assert finn.data("POST", "/api/user/topup", {"key": keys[0]}) == 200000  # TopUp/index.js adds data
    assert finn.data("GET", "/api/user/self")["quota"] == before + 200000
    assert finn.send("POST", "/api/user/topup", {"key": keys[0]}).json()["success"] is False  # used

    other = next(r for r in root.data("GET", "/api/redemption/?p=0") if r["key"] == keys[1])
    root.call("DELETE", f"/api/redemption/{other['id']}/")
    assert finn.send("POST", "/api/user/topup", {"key": keys[1]}).json()["success"] is False


# --- Users: components/UsersTable.js, pages/User/AddUser.js, EditUser.js -------------------------------------

def test_root_adds_edits_promotes_disables_and_deletes_a_user(gateway, root):
    name = "gus-" + uuid.uuid4().hex[:6]
    root.call("POST", "/api/user/", {"username": name, "display_name": "Gus", "password": "s3cret-pass"})
    pages = [root.data("GET", f"/api/user/?p={p}&order=") for p in (0, 1)]
    assert isinstance(pages[0], list) and isinstance(pages[1], list)
    [user] = root.data("GET", f"/api/user/search?keyword={name}")

    data = root.data("GET", f"/api/user/{user['id']}")  # EditUser.js with an id: the whole user, password blanked
    data.update(password="", display_name="Gus G.", quota=int("12345"), id=user["id"])
    root.call("PUT", "/api/user/", data)
    again = root.data("GET", f"/api/user/{user['id']}")
    assert (again["display_name"], again["quota"]) == ("Gus G.", 12345)

    for action, (role, status) in [("promote", (10, 1)), ("demote", (1, 1)), ("disable", (1, 2)),
                                   ("enable", (1, 1))]:
        answer = root.data("POST", "/api/user/manage", {"username": name, "action": action})
        assert (answer["role"], answer["status"]) == (role, status), action
    root.call("POST", "/api/user/manage", {"username": name, "action": "delete"})
    assert root.data("GET", f"/api/user/search?keyword={name}") == []


def test_a_common_user_meets_403_and_a_bad_access_token_401_with_the_message(gateway):
    hana = register_and_login(gateway, "hana-" + uuid.uuid4().hex[:6])
    refused = hana.send("GET", "/api/channel/?p=0")
    assert refused.status_code == 403
    assert refused.json()["success"] is False and refused.json()["message"]
    stranger = httpx.get(gateway.url + "/api/user/self", headers={"Authorization": "not-a-token"})
    assert stranger.status_code == 401
    assert stranger.json()["success"] is False and stranger.json()["message"]


# --- Logs: components/LogsTable.js ------------------------------------------------------------------------------

def test_the_log_pages_read_pages_of_unix_second_logs_and_stats(gateway, root):
    ivy = register_and_login(gateway, "ivy-" + uuid.uuid4().hex[:6])
    [code] = root.data("POST", "/api/redemption/", {"name": "webui-logs", "quota": 1000, "count": 1})
    ivy.call("POST", "/api/user/topup", {"key": code})  # a top-up log of her own
    start = int(date_parse_seconds(timestamp2string(0)))
    end = int(date_parse_seconds(timestamp2string(time.time() + 3600)))
    query = f"type=0&token_name=&model_name=&start_timestamp={start}&end_timestamp={end}"

    logs = root.data("GET", f"/api/log/?p=0&{query}&username=&channel=")
    assert 0 < len(logs) <= ITEMS_PER_PAGE
    assert all(isinstance(log["created_at"], int) and abs(log["created_at"] - time.time()) < 3600 for log in logs)
    assert isinstance(root.data("GET", f"/api/log/?p=1&{query}&username=&channel="), list)
    stat = root.data("GET", f"/api/log/stat?{query}&username=&channel=")
    assert isinstance(stat["quota"], int)

    own = ivy.data("GET", f"/api/log/self/?p=0&{query}")
    assert [log["type"] for log in own] == [1]  # LOG_OPTIONS: 1 is a top-up
    assert isinstance(own[0]["created_at"], int) and abs(own[0]["created_at"] - time.time()) < 600
    username = ivy.data("GET", "/api/user/self")["username"]
    assert [log["type"] for log in root.data("GET", f"/api/log/?p=0&{query}&username={username}&channel=")] == [1]
    assert isinstance(ivy.data("GET", f"/api/log/self/stat?{query}")["quota"], int)
    assert isinstance(ivy.data("GET", "/api/log/self/search?keyword="), list)

    # OperationSetting.js deleteHistoryLogs(): Date.parse of a month ago / 1000; nothing is that old here.
    month_ago = int(date_parse_seconds(timestamp2string(time.time() - 30 * 24 * 3600)))
    assert root.data("DELETE", f"/api/log/?target_timestamp={month_ago}") == 0


# --- Settings: SystemSetting.js, OperationSetting.js, OtherSetting.js, PersonalSetting.js -----------------------

def test_the_settings_pages_read_string_options_and_save_them_as_strings(gateway, root):
    options = {o["key"]: o["value"] for o in root.data("GET", "/api/option/")}
    assert all(isinstance(v, str) for v in options.values())
    options["EmailDomainWhitelist"].split(",")  # SystemSetting.js getOptions()
    ratios = {k: json.loads(options[k]) for k in ("ModelRatio", "GroupRatio", "CompletionRatio")}

    # OperationSetting.js: numbers typed into inputs are strings; ratios are the pretty-printed JSON text.
    ratios["ModelRatio"]["webui-model"] = 2.5
    for key, value in [("QuotaForNewUser", "4321"), ("RetryTimes", "2"), ("TopUpLink", "https://pay.example.com"),
                       ("ModelRatio", json.dumps(ratios["ModelRatio"], indent=2))]:
        root.call("PUT", "/api/option/", {"key": key, "value": value})
    # An `...Enabled` switch sends the flipped value as "true"/"false".
    flipped = "false" if options["LogConsumeEnabled"] == "true" else "true"
    root.call("PUT", "/api/option/", {"key": "LogConsumeEnabled", "value": flipped})
    # OtherSetting.js and SystemSetting.js texts.
    for key, value in [("Notice", "# Maintenance tonight"), ("SystemName", "WebUI AI"),
                       ("ServerAddress", gateway.url)]:
        root.call("PUT", "/api/option/", {"key": key, "value": value})

    saved = {o["key"]: o["value"] for o in root.data("GET", "/api/option/")}
    assert (saved["QuotaForNewUser"], saved["RetryTimes"], saved["LogConsumeEnabled"]) == ("4321", "2", flipped)
    assert json.loads(saved["ModelRatio"])["webui-model"] == 2.5
    status = root.data("GET", "/api/status")
    assert (status["system_name"], status["top_up_link"]) == ("WebUI AI", "https://pay.example.com")
    assert root.data("GET", "/api/notice") == "# Maintenance tonight"
    root.call("PUT", "/api/option/", {"key": "LogConsumeEnabled", "value": options["LogConsumeEnabled"]})


def test_the_personal_page_makes_an_access_token_an_invite_link_and_deletes_the_account(gateway):
    jack = register_and_login(gateway, "jack-" + uuid.uuid4().hex[:6])
    access = jack.data("GET", "/api/user/token")
    me = httpx.get(gateway.url + "/api/user/self", headers={"Authorization": access}).json()["data"]
    aff = jack.data("GET", "/api/user/aff")
    assert isinstance(aff, str) and aff
    assert isinstance(jack.data("GET", "/api/user/dashboard"), (list, dict))

    invited = register_and_login(gateway, "kim-" + uuid.uuid4().hex[:6], aff_code=aff)
    assert invited.data("GET", "/api/user/self")["inviter_id"] == me["id"]

    me["password"] = ""
    me["display_name"] = "Jack J."
    jack.call("PUT", "/api/user/self", me)  # EditUser.js without an id
    assert jack.data("GET", "/api/user/self")["display_name"] == "Jack J."

    jack.call("DELETE", "/api/user/self")
    jack.call("GET", "/api/user/logout")
    assert jack.send("GET", "/api/user/self").status_code == 401


# --- Another site's page, with the same cookie ------------------------------------------------------------------

@pytest.mark.parametrize(("site", "origin"), [("cross-site", "https://evil.example"),
                                              ("same-site", "http://sub.127.0.0.1.nip.io")])
def test_a_write_from_another_site_with_the_session_cookie_is_refused_and_changes_nothing(gateway, root, site,
                                                                                           origin):
    attacker = Page(gateway.url, site=site, origin=origin)
    attacker.client.cookies = root.client.cookies
    before = {o["key"]: o["value"] for o in root.data("GET", "/api/option/")}
    for method, path, body in [
            ("POST", "/api/channel/", channel_body("evil", "https://evil.example", ["gpt-4o"])),
            ("PUT", "/api/option/", {"key": "SystemName", "value": "Pwned"}),
            ("POST", "/api/user/", {"username": "evil", "display_name": "", "password": "s3cret-pass"}),
            ("POST", "/api/redemption/", {"name": "evil", "quota": 10**9, "count": 1}),
            ("PUT", "/api/user/self", {"password": "evil-password"})]:
        refused = attacker.send(method, path, body)
        assert refused.status_code == 403, (method, path)
        assert refused.json() == {"success": False, "message": "This request came from another site. "
                                                               "Open this site itself to do this."}
    assert root.data("GET", "/api/channel/search?keyword=evil") == []
    assert root.data("GET", "/api/user/search?keyword=evil") == []
    assert {o["key"]: o["value"] for o in root.data("GET", "/api/option/")} == before
    Page(gateway.url).call("POST", "/api/user/login", {"username": "root", "password": NEW_PASSWORD})


def test_an_origin_that_is_not_the_servers_is_refused_without_fetch_metadata(gateway, root):
    """An older browser sends no Sec-Fetch-Site: the Origin decides, scheme, host and port."""
    for origin in ("https://evil.example", gateway.url.replace("http://", "https://"), "http://127.0.0.1:1",
                   "null"):
        attacker = httpx.Client(base_url=gateway.url, cookies=root.client.cookies, timeout=30)
        refused = attacker.put("/api/option/", json={"key": "SystemName", "value": "Pwned"},
                               headers={"Origin": origin})
        assert refused.status_code == 403, origin
    assert root.data("GET", "/api/status")["system_name"] != "Pwned"
    same = httpx.Client(base_url=gateway.url, cookies=root.client.cookies, timeout=30)
    assert same.put("/api/option/", json={"key": "Footer", "value": "ok"},
                    headers={"Origin": gateway.url}).json()["success"] is True


def test_signing_in_from_another_site_is_refused(gateway, root):
    page = Page(gateway.url, site="cross-site", origin="https://evil.example")
    refused = page.send("POST", "/api/user/login", {"username": "root", "password": NEW_PASSWORD})
    assert refused.status_code == 403 and refused.json()["success"] is False
    assert "session" not in page.client.cookies
