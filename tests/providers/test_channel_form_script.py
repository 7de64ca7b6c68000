"""The channel form's script (static/oneapi/channel_form.js) in a real browser: the console's add page, as the
server renders it, switched to another type and its model picker used. Skipped where no Chromium is installed."""

import json
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.templatetags.static import static
from django.urls import reverse

from providers import selectors

pytestmark = pytest.mark.django_db

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SCRIPT = Path(settings.BASE_DIR) / "static" / "oneapi" / "channel_form.js"

# Runs after the form's script has set itself up: pick Bedrock, tick one known model, add it, and write down
# what the page shows.
PROBE = """<script>
document.addEventListener("DOMContentLoaded", function () {
  var type = document.getElementById("id_type");
  type.value = "33";
  type.dispatchEvent(new Event("change"));
  var picker = document.getElementById("id_model_picker");
  picker.options[0].selected = true;
  var picked = picker.options[0].value;
  document.getElementById("channel-models-fill").click();
  var hidden = function (name) { return document.querySelector(".field-config_" + name).hidden; };
  document.body.setAttribute("data-probe", JSON.stringify({
    placeholder: document.getElementById("id_base_url").placeholder,
    key: document.getElementById("channel-key-format").textContent,
    shown: ["region", "ak", "sk", "session_token", "responses_api", "api_version", "proxy"].filter(function (n) {
      return !hidden(n); }),
    picked: picked, models: document.getElementById("id_models").value}));
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium to run the page's script in")
def test_switching_the_type_switches_hints_config_fields_and_picker(root_client, tmp_path):
    page = root_client.get(reverse("admin:providers_channel_add") + "?type=1").content.decode()
    assert f'src="{static("oneapi/channel_form.js")}"' in page
    page = page.replace(f'src="{static("oneapi/channel_form.js")}"', f'src="{SCRIPT.as_uri()}"')
    (tmp_path / "form.html").write_text(page.replace("</body>", PROBE), encoding="utf-8")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--dump-dom", (tmp_path / "form.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    probe = json.loads(unescape(dom.split('data-probe="', 1)[1].split('"', 1)[0]))
    assert probe["placeholder"] == "https://..." and probe["key"].startswith("AK|SK|REGION")
    assert probe["shown"] == ["region", "ak", "sk", "session_token", "proxy"]
    first_bedrock_model = selectors.models_by_channel_type()[33][0]
    assert probe["picked"] == first_bedrock_model == probe["models"]
