"""The agents' harness itself: an agent that cannot be installed fails the test with npm's log (CI reaches the
registry, so a skip would hide a broken test), and nothing half-installed is left to be taken for an install."""

from __future__ import annotations

import pytest

from tests.e2e.agents.harness import CLAUDE_CODE, Agent


def test_an_agent_that_cannot_be_installed_fails_with_npms_log(tmp_path):
    missing = Agent("claude-code", CLAUDE_CODE.package, "0.0.0-no-such-version", "claude", cache=tmp_path)
    with pytest.raises(AssertionError) as failed:
        missing.installed()
    assert f"npm install {CLAUDE_CODE.package}@0.0.0-no-such-version failed" in str(failed.value)
    assert "ETARGET" in str(failed.value) or "notarget" in str(failed.value).lower()
    assert list(tmp_path.iterdir()) == []


def test_an_installed_agent_is_reused_and_runs_with_a_scratch_home(claude_code, tmp_path):
    assert claude_code.installed() == claude_code.executable
    run = claude_code.run("--version", home=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith(claude_code.version)
