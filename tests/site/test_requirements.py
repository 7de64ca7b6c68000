"""The pinned requirements*.txt are what pip-compile made of the requirements*.in (`make requirements`): a
changed .in must be compiled again, and the compiled files must install from any machine's package index."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
COMPILED = {"requirements.in": "requirements.txt", "requirements-test.in": "requirements-test.txt",
            "requirements-mysql.in": "requirements-mysql.txt", "requirements-otel.in": "requirements-otel.txt"}


def requirement_lines(name: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [line for line in lines if line]


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in requirement_lines(name):
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        found[canonicalize_name(requirement.name)] = spec.version
    return found


@pytest.mark.parametrize("compiled", COMPILED.values())
def test_compiled_files_hold_only_exact_pins(compiled):
    """No index URL, find-links, hash or extra: pip installs them from the index it is set up with, and
    requirements.txt can constrain the others."""
    for line in requirement_lines(compiled):
        requirement = Requirement(line)
        assert not line.startswith("-") and "--hash" not in line and not requirement.extras, line
        assert [spec.operator for spec in requirement.specifier] == ["=="], line


@pytest.mark.parametrize("source, compiled", COMPILED.items())
def test_every_direct_requirement_is_pinned_within_its_range(source, compiled):
    pinned = pins(compiled)
    for line in requirement_lines(source):
        if line.startswith("-c "):
            continue
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{source} names {requirement.name}: run `make requirements`"
        assert requirement.specifier.contains(pinned[name]), f"{compiled} pins {name}=={pinned[name]} " \
            f"outside {source}'s {requirement.specifier}: run `make requirements`"


@pytest.mark.parametrize("compiled", ["requirements-test.txt", "requirements-mysql.txt", "requirements-otel.txt"])
def test_the_other_files_pin_what_the_gateway_uses_at_its_version(compiled):
    runtime = pins("requirements.txt")
    shared = {name: version for name, version in pins(compiled).items() if name in runtime}
    assert shared == {name: runtime[name] for name in shared}
