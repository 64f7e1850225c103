"""The shape of the pack's code, measured: module sizes, import circles, who reads the environment, singletons.

    python scripts/arch_report.py            # a short report of the whole pack
    python scripts/arch_report.py --json     # the same figures as JSON

tests/pack/test_architecture.py holds the tree to the rules of docs/architecture.md with these functions:
no module over ``MAX_LINES`` lines, no import circle (imports under ``TYPE_CHECKING`` and inside functions
count too), the environment read in one module only, ``api_client`` free of torch and ComfyUI.
It reads the files as text (``ast``); nothing of the pack is imported.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api_client", "nodes")
MAX_LINES = 400
# The stand-in is the offline server the tests and the demo talk to, not part of the pack's running code; it
# is measured for size and circles like the rest, but it may read its own environment and keep its own state.
STANDIN = "api_client.standin"
ENV_READERS_ALLOWED = {"api_client.settings"}


@dataclass
class Module:
    name: str  # dotted, relative to the pack root: api_client.money.ledger
    path: Path
    is_package: bool
    lines: int
    imports: set[str] = field(default_factory=set)
    reads_env: bool = False
    singletons: list[str] = field(default_factory=list)


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _resolve(module: Module, level: int, target: str | None) -> str:
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _reads_env(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    return False


def _singleton(node: ast.stmt) -> str | None:
    """A module-level name (not an ALL_CAPS constant) bound to a new object: state as long as the process."""
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Call):
        return None
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    names = [t.id for t in targets if isinstance(t, ast.Name) and not t.id.isupper()]
    func = node.value.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    stateful = called.lstrip("_")[:1].isupper() or called == "local"
    return names[0] if names and stateful and called not in {"TypeVar", "Path", "ContextVar"} else None


def load_modules(root: Path = ROOT) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    paths = [root / "__init__.py"] + [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]
    for path in paths:
        name, is_package = _module_name(path, root) if path != root / "__init__.py" else ("", True)
        text = path.read_text(encoding="utf-8")
        modules[name] = Module(name, path, is_package, len(text.splitlines()))
    for module in modules.values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = _resolve(module, node.level, node.module)
                for alias in node.names:
                    sub = f"{target}.{alias.name}" if target else alias.name
                    module.imports.add(sub if sub in modules else target)
            elif _reads_env(node):
                module.reads_env = True
        for stmt in tree.body:
            name = _singleton(stmt)
            if name:
                module.singletons.append(name)
        module.imports.discard(module.name)
        module.imports = {m for m in module.imports if m in modules}
        module.imports.discard("")
    return modules


def circles(modules: dict[str, Module]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted; the groups sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(name: str) -> None:
        index[name] = low[name] = counter[0]
        counter[0] += 1
        stack.append(name)
        on_stack.add(name)
        for other in sorted(modules[name].imports):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in on_stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == name:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for name in sorted(modules):
        if name not in index:
            visit(name)
    return sorted(found)


def report(modules: dict[str, Module]) -> dict[str, object]:
    running = {n: m for n, m in modules.items() if not n.startswith(STANDIN)}
    largest = max(modules.values(), key=lambda m: m.lines)
    return {
        "modules": len(modules),
        "largest": [largest.name or "__init__", largest.lines],
        "over_limit": sorted([m.name, m.lines] for m in modules.values() if m.lines > MAX_LINES),
        "circles": circles(modules),
        "env_readers": sorted(n for n, m in running.items() if m.reads_env),
        "singletons": sorted(f"{n}.{s}" for n, m in running.items() for s in m.singletons),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = report(load_modules())
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"modules: {figures['modules']}; largest: {figures['largest'][0]} ({figures['largest'][1]} lines)")
    print(f"over {MAX_LINES} lines: {figures['over_limit'] or 'none'}")
    print(f"import circles: {len(figures['circles'])}")
    for group in figures["circles"]:
        print("  " + " <-> ".join(group))
    print(f"modules reading the environment: {len(figures['env_readers'])}: {', '.join(figures['env_readers'])}")
    print(f"module-level state (objects, locks): {len(figures['singletons'])}")
    for name in figures["singletons"]:
        print("  " + name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
