"""The Chinese catalogue is complete, compiled, and covers every translatable string in the code."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
SOURCES = ("accounts", "billing", "providers", "relay", "oneapi_site", "templates", "manage.py")

pytestmark = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext is installed by `make install-browser`")


def _statistics(po: Path) -> str:
    done = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(po)],
                          capture_output=True, text=True, env={"LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    return done.stderr.strip()


def test_every_entry_of_the_catalogue_is_translated():
    stats = _statistics(CATALOGUE)
    assert "fuzzy" not in stats and "untranslated" not in stats, stats


def test_the_compiled_catalogue_matches_its_source(tmp_path):
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(fresh), str(CATALOGUE)], check=True)
    assert fresh.read_bytes() == COMPILED.read_bytes(), "run: msgfmt -o locale/zh_Hans/LC_MESSAGES/django.mo " \
                                                         "locale/zh_Hans/LC_MESSAGES/django.po"


def test_no_string_in_the_code_is_missing_from_the_catalogue(tmp_path):
    """makemessages over a copy of the sources adds any new msgid untranslated; there must be none."""
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo"))
        else:
            shutil.copy(source, tmp_path / name)
    shutil.copytree(ROOT / "locale" / "zh_Hans", tmp_path / "locale" / "zh_Hans",
                    ignore=shutil.ignore_patterns("*.mo"))
    done = subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete",
                           "--no-location", "-v0"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    refreshed = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    stats = _statistics(refreshed)
    assert "untranslated" not in stats and "fuzzy" not in stats, stats


def test_the_chinese_pages_address_people_as_ni_never_nin():
    """你 everywhere: our own strings, and Django's and DRF's strings the pages and the console show."""
    from django.utils.translation import trans_real

    ours = CATALOGUE.read_text(encoding="utf-8")
    assert "您" not in ours
    catalogue = trans_real.translation("zh-hans")._catalog   # ours first, then the apps' and Django's own
    formal = sorted(str(key) for key, _value in catalogue.items() if "您" in str(catalogue[key]))
    assert formal == [], "mark them in oneapi_site/borrowed_strings.py and translate them with 你"


@pytest.mark.django_db
def test_the_console_says_ni_to_a_user_it_turns_away(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="plain"))
    html = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "你当前以 plain 登录" in html and "您" not in html
