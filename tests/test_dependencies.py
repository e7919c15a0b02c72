"""Dependencies point one way: features import only their own layer or below, and no modules
import each other in a loop.

Every module of ``supporters/`` is read with ``ast``, so every ``import`` counts: at the top,
inside functions and under ``TYPE_CHECKING`` alike (an import inside a function still runs,
and a type-only one still ties the modules together for whoever reads them). Where a lower
layer needs something from a higher one, the higher one registers a hook from ``create_app``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "supporters"

#: Layers, lowest first. A module may import from its own layer and the ones below.
CORE = 0
LAYERS = {
    # The core: settings, the database and extensions, and helpers every feature shares.
    **dict.fromkeys(
        (
            "config",
            "db",
            "extensions",
            "audit",
            "mail",
            "i18n",
            "money",
            "numbers",
            "params",
            "downloads",
            "web",
            "jobs",
            "site_settings",
            "kept",
        ),
        CORE,
    ),
    "members": 1,
    "billing": 2,
    "voting": 3,
    "staff": 4,
    "patreon": 5,
    "public": 5,
    # On top, importing anything: what puts the application together.
    "doctor": 9,
    "demo": 9,
}
TOP = 9  # the app factory, supporters/__init__.py

#: Only the Stripe gateway talks to Stripe.
STRIPE_GATEWAY = "supporters.billing.stripe_gateway"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    """The module's layer; a module of no known layer fails the test until it is given one."""
    parts = module.split(".")
    if len(parts) == 1:
        return TOP
    assert parts[1] in LAYERS, f"{module} is in no layer: add {parts[1]!r} to LAYERS"
    return LAYERS[parts[1]]


def imported(module: str) -> Iterator[tuple[str, int]]:
    """(name, line) of everything the module imports, wherever the statement is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                # `from package import module` imports the module; else the name is the module's.
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in MODULES else source), node.lineno


def own_module(name: str) -> str | None:
    """The module of ``supporters`` that an imported name is, or is in; None for others."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def edges() -> dict[str, dict[str, int]]:
    """Each module's imports of other modules of the package, with the line of the first."""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        targets = graph.setdefault(module, {})
        for name, line in imported(module):
            target = own_module(name)
            if target is not None and target != module:
                targets.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The groups of modules that import each other in a loop (Tarjan's strongly connected
    components of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def loop_through(group: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """One loop inside a group of modules that import each other: first, ..., first."""
    path = [group[0]]
    while True:
        following = next(t for t in sorted(graph[path[-1]]) if t in group)
        if following in path:
            return [*path[path.index(following) :], following]
        path.append(following)


def test_features_import_only_their_own_layer_or_below() -> None:
    graph = edges()
    upward = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} imports {target},"
        f" a layer above"
        for module, targets in sorted(graph.items())
        for target, line in sorted(targets.items())
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_modules_import_each_other_in_a_loop() -> None:
    graph = edges()
    loops = [
        " -> ".join(
            f"{module} (line {graph[module][following]})" if following else module
            for module, following in zip(loop, [*loop[1:], None], strict=True)
        )
        for loop in (loop_through(group, graph) for group in cycles(graph))
    ]
    assert not loops, "modules import each other in a loop:\n" + "\n".join(loops)


def test_only_the_stripe_gateway_imports_stripe() -> None:
    outside = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"
        for module in sorted(MODULES)
        if module != STRIPE_GATEWAY and not module.startswith(STRIPE_GATEWAY + ".")
        for name, line in imported(module)
        if name == "stripe" or name.startswith("stripe.")
    ]
    assert not outside, "import stripe outside billing/stripe_gateway/: " + ", ".join(outside)
