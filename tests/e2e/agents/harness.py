"""The real coding agents from the npm registry, installed once and run without a terminal.

`Agent.installed()` puts a pinned version in a cache outside the repository (ONEAPI_AGENTS_CACHE, by default
~/.cache/oneapi-tests/agents/<name>@<version>) and reuses it on later runs; a failed install fails the test with
npm's log, because CI reaches the registry and an agent that cannot be installed is a broken test, not a skip.
`Agent.run()` starts it with a scratch HOME and config directory, nothing of the developer's environment but
PATH and locale, no telemetry, update checks or error reports, and a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("ONEAPI_AGENTS_CACHE") or Path.home() / ".cache" / "oneapi-tests" / "agents")
INSTALL_TIMEOUT = 600  # seconds: a cold install downloads a few hundred megabytes of native binaries
RUN_TIMEOUT = 180  # seconds one agent invocation may take on a busy two-core machine


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"{' '.join(self.args)} -> {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Agent:
    name: str  # the cache directory's name
    package: str
    version: str
    binary: str
    quiet: dict[str, str] = field(default_factory=dict)  # environment that keeps it off the internet
    cache: Path = CACHE

    @property
    def prefix(self) -> Path:
        return self.cache / f"{self.name}@{self.version}"

    @property
    def executable(self) -> Path:
        return self.prefix / "node_modules" / ".bin" / self.binary

    def installed(self) -> Path:
        """The agent's executable, installed into the cache first if it is not there yet."""
        if self.executable.exists():
            return self.executable
        npm = shutil.which("npm")
        assert npm, "npm is not installed: the agent tests need Node.js and npm"
        self.cache.mkdir(parents=True, exist_ok=True)
        # Installed beside its final place and renamed in, so an interrupted install is never taken for a good one.
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=self.cache))
        try:
            done = subprocess.run([npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
                                   "--no-update-notifier", f"{self.package}@{self.version}"],
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            assert done.returncode == 0, f"npm install {self.package}@{self.version} failed:\n{done.stdout}\n" \
                                         f"{done.stderr}"
            try:
                staging.rename(self.prefix)
            except OSError:  # another test run installed it meanwhile
                if not self.executable.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        assert self.executable.exists(), f"{self.package} installed no {self.binary} in {self.prefix}"
        return self.executable

    def run(self, *args: str, home: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = RUN_TIMEOUT) -> Run:
        """The agent with `args`, HOME at `home`; its output. A run past `timeout` fails the test."""
        command = [str(self.installed()), *args]
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TERM": "dumb",
                       "HOME": str(home), "NO_COLOR": "1", **self.quiet, **(env or {})}
        environment = {k: v.replace("{home}", str(home)) for k, v in environment.items()}
        try:
            done = subprocess.run(command, env=environment, cwd=cwd or home, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as late:
            raise AssertionError(f"{' '.join(command)} ran past {timeout}s:\n{late.stdout}\n{late.stderr}") from None
        return Run(command, done.returncode, done.stdout, done.stderr)


CLAUDE_CODE = Agent("claude-code", "@anthropic-ai/claude-code", "2.1.332", "claude", quiet={
    "CLAUDE_CONFIG_DIR": "{home}/.claude", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    # A refused request fails the run at once instead of after minutes of backoff.
    "CLAUDE_CODE_MAX_RETRIES": "0"})
CODEX = Agent("codex", "@openai/codex", "0.171.0", "codex", quiet={"CODEX_HOME": "{home}/.codex"})
GEMINI_CLI = Agent("gemini-cli", "@google/gemini-cli", "0.61.0", "gemini", quiet={
    "GEMINI_TELEMETRY_ENABLED": "false", "GEMINI_CLI_TRUST_WORKSPACE": "true"})


def codex_config(home: Path, *, base_url: str, model: str, key_variable: str) -> None:
    """Codex's config.toml: one model provider at `base_url` speaking Responses, its key read from
    `key_variable`; no update check, analytics or feedback upload."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(f"""\
model = "{model}"
model_provider = "gateway"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.gateway]
name = "gateway"
base_url = "{base_url}"
wire_api = "responses"
env_key = "{key_variable}"
request_max_retries = 0
stream_max_retries = 0
""")


def gemini_settings(home: Path) -> None:
    """Gemini CLI's user settings: API-key auth (with GOOGLE_GEMINI_BASE_URL it goes to that host), no usage
    statistics, telemetry or update checks."""
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False}}))
