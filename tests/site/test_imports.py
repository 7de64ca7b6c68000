"""The apps depend on each other one way, and no module of the project imports itself back.

The core of the apps never reaches the relay, not even through a module it imports: a core service that
loads the adapters would load the relay with them if one adapter imported it.

The graph is read from the source (ast), not from `sys.modules`: an import written inside a function counts
as much as one at the top, since it runs as soon as that function does and a cycle hidden that way breaks
the day someone moves it up. `from x import y` counts as importing `x.y` when `y` is a module of the
project, else as importing `x`. Importing `a.b.c` runs the packages `a` and `a.b` first, so it counts as
importing them too: a package whose `__init__` imports its submodules (the adapters' registry) closes a
cycle with any module outside it that imports one of its submodules and is imported by them. The one exception
is the packages that enclose the importing module itself: they are already running when it runs, and a
package's submodules importing each other while the package imports them is the usual shape, not a cycle.
Naming an enclosing package outright (`from a.b import REGISTRY` in `a.b.c`) still counts.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("accounts", "billing", "providers", "relay", "oneapi_site")
# The layer rule: the core of these apps serves the relay, never the other way round, so neither they nor
# any module they import (the adapters included) imports the relay; views, admin, API and the relay itself
# may import anything.
CORE_APPS = ("accounts", "billing", "providers")
CORE_LAYERS = ("models", "services", "selectors", "health")

Graph = Mapping[str, AbstractSet[str]]  # module -> the project modules it imports


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages (migrations included)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` loads: itself, or its nearest enclosing module (an attribute import)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, source: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in `source`, itself excluded."""
    is_package = modules.get(module, Path()).name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None:
                found.add(resolved)
                found.update(package for package in _packages_around(resolved, modules)
                             if not module.startswith(package + "."))
    found.discard(module)
    return found


def _packages_around(module: str, modules: dict[str, Path]) -> list[str]:
    """The project packages enclosing `module`, which Python runs before it when it loads it."""
    parts = module.split(".")
    return [name for name in (".".join(parts[:i]) for i in range(1, len(parts))) if name in modules]


def import_graph(root: Path = ROOT) -> Graph:
    modules = project_modules(root)
    return {name: imports_of(name, path.read_text(), modules) for name, path in modules.items()}


def knots(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly connected groups)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        # Iterative: a recursive walk would hit Python's recursion limit on a long chain of imports.
        work = [(node, iter(sorted(graph.get(node, ()))))]
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[current] = min(low[current], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[current])
            if low[current] == index[current]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == current:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle per knot, as a path that returns to its start."""
    return [_cycle_in(group, graph) for group in knots(graph)]


def _cycle_in(group: list[str], graph: Graph) -> list[str]:
    """A shortest path from the group's first module back to it, through the group only (breadth first)."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child in members and child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{group} is not a cycle")  # Tarjan grouped them, so there is one


def is_core(module: str) -> bool:
    """A model, service, selector or health module of accounts, billing or providers (packages included)."""
    parts = module.split(".")
    return len(parts) >= 2 and parts[0] in CORE_APPS and parts[1] in CORE_LAYERS


def is_relay(module: str) -> bool:
    return module.split(".")[0] == "relay"


def reached_from(graph: Graph, start: str) -> dict[str, str]:
    """Every module `start` imports, directly or not, with the module it is first imported from on a shortest
    path (breadth first). The walk does not go on past the relay: it may import anything."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child != start and child not in came_from:
                    came_from[child] = node
                    if not is_relay(child):
                        following.append(child)
        frontier = following
    return came_from


def layer_breaches(graph: Graph) -> list[str]:
    """Each core module that reaches the relay, directly or through other modules, with a shortest path to
    each relay module it enters (the relay packages run on the way there are not named again)."""
    breaches = []
    for module in sorted(m for m in graph if is_core(m)):
        came_from = reached_from(graph, module)
        entered = {m for m in came_from if is_relay(m) and not is_relay(came_from[m])}
        for target in sorted(entered):
            if any(other.startswith(target + ".") for other in entered):
                continue
            via = [came_from[target]]
            while via[-1] != module:
                via.append(came_from[via[-1]])
            through = " -> ".join(reversed(via[:-1]))
            breaches.append(f"{module} imports {target}" + (f" through {through}" if through else ""))
    return sorted(breaches)


def describe(graph: Graph) -> list[str]:
    """Each knot as one of its cycles, and the other modules caught in it."""
    lines = []
    for group in knots(graph):
        cycle = _cycle_in(group, graph)
        others = sorted(set(group) - set(cycle))
        lines.append(" -> ".join(cycle) + (f" (also in this knot: {', '.join(others)})" if others else ""))
    return lines


# --- The project ---------------------------------------------------------------


@functools.cache
def project_graph() -> Graph:
    """Read once for the tests below."""
    return {module: frozenset(targets) for module, targets in import_graph().items()}


def test_no_module_of_the_project_imports_itself_back():
    found = describe(project_graph())
    assert not found, "import cycles:\n" + "\n".join(found)


def test_models_services_and_selectors_of_the_apps_never_reach_the_relay():
    breaches = layer_breaches(project_graph())
    assert not breaches, "\n".join(breaches)


def test_the_walk_sees_the_project_and_its_imports():
    """The two tests above pass on an empty graph too: prove the graph is the real one."""
    graph = project_graph()
    assert {"accounts.models", "billing.services", "relay.pipeline", "oneapi_site.lib.errors"} <= graph.keys()
    assert "accounts.models" in graph["billing.services"]
    assert "billing.ledger" in graph["relay.admission"] and "relay.admission" in graph["relay.pipeline"]
    # The layer test walks on from a core module: the channel services load the adapters, and they the
    # modules the adapters share with the relay.
    reached = reached_from(graph, "providers.services")
    assert {"providers.adapters.cloudflare", "providers.adapters.uploads", "oneapi_site.lib.tokenizer"} <= set(reached)
    assert "providers" in graph["billing.services"]  # it imports providers.models, which runs providers first


# --- The walk itself, on made-up trees and graphs ------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def test_a_cycle_through_an_import_inside_a_function_is_found_and_named(tmp_path):
    root = _tree(tmp_path, {
        "accounts/services.py": "from billing.services import charge\n",
        "billing/services.py": "import os\n\ndef charge():\n    from accounts import services\n",
    })
    assert cycles(import_graph(root)) == [["accounts.services", "billing.services", "accounts.services"]]


def test_relative_imports_and_submodules_named_by_from_are_followed(tmp_path):
    root = _tree(tmp_path, {
        "providers/adapters/__init__.py": "from . import ali\n",
        "providers/adapters/ali/__init__.py": "from .chat import Adapter\n",
        "providers/adapters/ali/chat.py": "from ..base import Base\nfrom providers.adapters import ADAPTERS\n",
        "providers/adapters/base.py": "Base = object\n",
    })
    graph = import_graph(root)
    assert graph["providers.adapters"] == {"providers.adapters.ali"}
    assert graph["providers.adapters.ali"] == {"providers.adapters.ali.chat"}
    assert graph["providers.adapters.ali.chat"] == {"providers.adapters.base", "providers.adapters"}
    assert cycles(graph) == [["providers.adapters", "providers.adapters.ali", "providers.adapters.ali.chat",
                              "providers.adapters"]]


def test_importing_a_submodule_runs_its_package_so_a_cycle_through_the_package_is_found(tmp_path):
    root = _tree(tmp_path, {
        "providers/adapters/__init__.py": "from providers.adapters.openai import OpenAIAdapter\n",
        "providers/adapters/base.py": "Base = object\n",
        "providers/adapters/openai.py": "from providers.adapters.base import Base\nfrom relay import routing\n",
        "relay/routing.py": "from providers.adapters.base import Base\n",
    })
    graph = import_graph(root)
    assert graph["relay.routing"] == {"providers", "providers.adapters", "providers.adapters.base"}
    # The sibling import of the package's own submodule is no edge back to the package.
    assert graph["providers.adapters.openai"] == {"providers.adapters.base", "relay", "relay.routing"}
    assert cycles(graph) == [["providers.adapters", "providers.adapters.openai", "relay.routing",
                              "providers.adapters"]]


def test_a_package_importing_its_submodules_that_import_each_other_is_no_cycle(tmp_path):
    root = _tree(tmp_path, {
        "providers/adapters/__init__.py": "from . import ali, base\n",
        "providers/adapters/base.py": "Base = object\n",
        "providers/adapters/ali/__init__.py": "from providers.adapters.ali.chat import Adapter\n",
        "providers/adapters/ali/chat.py": "from providers.adapters.base import Base\n",
        "providers/adapters/ali/speech.py": "from providers.adapters.ali.chat import Adapter\n",
    })
    graph = import_graph(root)
    assert "providers.adapters" not in graph["providers.adapters.ali.chat"]
    assert "providers.adapters.ali" not in graph["providers.adapters.ali.speech"]
    assert cycles(graph) == []


def test_a_longer_cycle_is_named_in_the_order_it_runs():
    graph = {"a": {"b"}, "b": {"c", "x"}, "c": {"a"}, "x": set(), "y": {"y"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_two_separate_cycles_are_both_named():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}, "e": {"a", "c"}}
    assert cycles(graph) == [["a", "b", "a"], ["c", "d", "c"]]


def test_every_module_of_a_knot_is_named_even_off_the_cycle_shown():
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"d"}, "d": {"a"}}
    assert describe(graph) == ["a -> b -> a (also in this knot: c, d)"]


def test_an_acyclic_graph_passes():
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_a_service_importing_the_relay_breaks_the_layer_rule(tmp_path):
    root = _tree(tmp_path, {
        "relay/pipeline.py": "",
        "relay/probe.py": "",
        "providers/services/__init__.py": "def test():\n    from relay.probe import probe\n",
        "providers/admin.py": "from relay import pipeline\n",
        "billing/models.py": "import relay.pipeline\n",
    })
    assert layer_breaches(import_graph(root)) == ["billing.models imports relay.pipeline",
                                                  "providers.services imports relay.probe"]


def test_an_adapter_importing_the_relay_breaks_the_layer_rule_for_the_services_that_load_it(tmp_path):
    root = _tree(tmp_path, {
        "relay/media.py": "from providers.adapters import uploads\n",
        "relay/tokenizer.py": "",
        "providers/adapters/__init__.py": "from providers.adapters import cloudflare, gemini\n",
        "providers/adapters/uploads.py": "",
        "providers/adapters/cloudflare.py": "from providers.adapters import uploads\nfrom relay import media\n",
        "providers/adapters/gemini.py": "def count():\n    from relay.tokenizer import count_input\n",
        "providers/services.py": "from providers.adapters import ADAPTERS\n",
        "providers/selectors.py": "from providers import services\n",
        "billing/services.py": "from providers.adapters import uploads\n",
    })
    # billing.services names only a module the relay shares, but importing it runs its package first, and the
    # package loads every adapter.
    assert layer_breaches(import_graph(root)) == [
        "billing.services imports relay.media through providers.adapters -> providers.adapters.cloudflare",
        "billing.services imports relay.tokenizer through providers.adapters -> providers.adapters.gemini",
        "providers.selectors imports relay.media through providers.services -> providers.adapters "
        "-> providers.adapters.cloudflare",
        "providers.selectors imports relay.tokenizer through providers.services -> providers.adapters "
        "-> providers.adapters.gemini",
        "providers.services imports relay.media through providers.adapters -> providers.adapters.cloudflare",
        "providers.services imports relay.tokenizer through providers.adapters -> providers.adapters.gemini",
    ]


def test_a_module_shared_by_the_relay_and_the_adapters_keeps_the_layer_rule(tmp_path):
    root = _tree(tmp_path, {
        "relay/upstream.py": "from providers.adapters.uploads import Upload\n",
        "providers/adapters/__init__.py": "from providers.adapters import cloudflare\n",
        "providers/adapters/uploads.py": "from oneapi_site.lib import tokenizer\n",
        "providers/adapters/cloudflare.py": "from providers.adapters import uploads\n",
        "providers/services.py": "from providers.adapters import ADAPTERS\n",
        "oneapi_site/lib/__init__.py": "",
        "oneapi_site/lib/tokenizer.py": "",
    })
    assert layer_breaches(import_graph(root)) == []


@pytest.mark.parametrize("module", ["accounts.services.signup", "providers.health", "billing.selectors"])
def test_core_modules_are_recognised(module):
    assert is_core(module)


@pytest.mark.parametrize("module", ["accounts.admin", "billing.api.logs", "providers.adapters.gemini", "relay.auth"])
def test_views_admin_api_and_adapters_are_not_core(module):
    assert not is_core(module)
