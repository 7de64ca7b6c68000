"""CONFIG_FILE at start, with the real server as `make serve` runs it: applied before serving, once per start,
and a file that cannot be applied stops the start with a message naming the file, the entry and the field."""

import uuid

import httpx
import openai
import yaml

from tests.e2e.servers import START_TIMEOUT, prepare_database, running_gateway

ROOT_TOKEN = "cfg" + uuid.uuid4().hex
ACCESS_TOKEN = "cfg-access-" + uuid.uuid4().hex


def config_text(upstream_url: str) -> str:
    return yaml.safe_dump({
        "version": 1,
        "channels": [{"name": "from-config", "type": 1, "key": "sk-upstream-config", "base_url": upstream_url,
                      "models": ["gpt-4o-mini"], "group": ["default"]}],
        "prices": {"ModelRatio": {"gpt-4o-mini": 0.3}},
        "options": {"SystemName": "Configured Gateway"},
    })


def test_config_file_is_applied_before_serving_and_a_restart_finds_no_changes(tmp_path, upstream_server):
    upstream_server.reset()
    path = tmp_path / "oneapi.yaml"
    path.write_text(config_text(upstream_server.url))
    with prepare_database(tmp_path, INITIAL_ROOT_TOKEN=ROOT_TOKEN, INITIAL_ROOT_ACCESS_TOKEN=ACCESS_TOKEN) as env:
        env = {**env, "CONFIG_FILE": str(path)}
        with running_gateway(tmp_path, env, name="first") as gateway:
            sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-" + ROOT_TOKEN, max_retries=0)
            answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
            assert answer.choices[0].message.content == "Hello from the mock upstream."
            status = httpx.get(gateway.url + "/api/status", timeout=10).json()
            assert status["data"]["system_name"] == "Configured Gateway"
            stored = httpx.get(gateway.url + "/api/option/", headers={"Authorization": ACCESS_TOKEN},
                               timeout=10).json()["data"]
            ratio = next(item["value"] for item in stored if item["key"] == "ModelRatio")
            assert yaml.safe_load(ratio) == {"gpt-4o-mini": 0.3}
            log = gateway.log_text()
            assert 'oneapi: CONFIG_FILE: added   channel "from-config" (type 1)' in log
            assert f"oneapi: CONFIG_FILE {path}: 1 added, 2 changed" in log
            assert "sk-upstream-config" not in log
        with running_gateway(tmp_path, env, name="second") as gateway:
            assert f"oneapi: CONFIG_FILE {path}: no changes" in gateway.log_text()
            channels = httpx.get(gateway.url + "/api/channel/", headers={"Authorization": ACCESS_TOKEN},
                                 timeout=10).json()["data"]
            items = channels["items"] if isinstance(channels, dict) else channels
            assert [item["name"] for item in items] == ["from-config"]


def test_a_bad_config_file_stops_the_start_with_its_message(tmp_path):
    path = tmp_path / "oneapi.yaml"
    path.write_text("channels:\n  - {name: broken, type: 1, key: k, base_url: ftp://nowhere}\n")
    with prepare_database(tmp_path) as env:
        with running_gateway(tmp_path, {**env, "CONFIG_FILE": str(path)}, wait=False) as gateway:
            code = gateway.proc.wait(START_TIMEOUT)
            log = gateway.log_text()
    assert code != 0
    assert f'oneapi: CONFIG_FILE: {path}: channels #1 "broken": base_url: base_url must start with' in log
    assert "Traceback" not in log
