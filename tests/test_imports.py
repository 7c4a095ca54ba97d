"""The package's import graph has no cycle: every module can be imported on its own, first.

Only imports that run when a module is imported count (module level, ``if TYPE_CHECKING`` excluded); imports
inside functions run later, once everything is loaded, and are how heavy or optional modules stay lazy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vidprompt

PACKAGE = Path(vidprompt.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _module_level_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    targets = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parent = base[: len(base) - node.level + 1]
                    module = ".".join(parent + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets.add(module)
                targets.update(f"{module}.{alias.name}" for alias in node.names)  # submodules named in the list

    visit(ast.parse(path.read_text("utf-8")).body)
    edges = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name and not name.startswith(target + "."):  # a parent package is not a cycle
            edges.add(target)
    return edges


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _module_level_imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_cli_module_imports_on_its_own():
    for name in sorted(m for m in _modules() if m.startswith("vidprompt.cli")):
        run = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"import {name} failed alone:\n{run.stderr[-800:]}"


def test_every_relative_import_names_a_module():
    """Imports inside functions run late (when a command runs): a wrong one would only show then."""
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                parent = base[: len(base) - node.level + 1]
                target = ".".join(parent + ([node.module] if node.module else []))
                if target not in modules:
                    wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {target}")
    assert not wrong, "relative imports of modules that do not exist:\n" + "\n".join(wrong)


def test_every_subpackage_is_installed():
    """pyproject.toml lists the packages a wheel holds; a new folder missing there imports from a checkout but
    not from an install."""
    import tomllib

    root = Path(__file__).resolve().parent.parent  # the checkout (the installed copy may live elsewhere)
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(path.parent.relative_to(root).parts) for path in (root / "vidprompt").rglob("__init__.py")}
    assert folders <= listed


def test_no_package_attribute_hides_a_submodule():
    """``package.name`` is the submodule ``name`` once imported; a function of that name in the package (as
    ``vidprompt.train`` once was) would be replaced by the module, or hide it, depending on import order."""
    import importlib

    hidden = []
    for name in sorted(_modules()):
        if "." not in name:
            continue
        parent, leaf = name.rsplit(".", 1)
        module = importlib.import_module(name)
        if getattr(importlib.import_module(parent), leaf) is not module:
            hidden.append(name)
    assert not hidden


def test_the_public_api_lists_each_lazy_name_and_each_resolves():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    checked = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.If)
               for stmt in node.body if isinstance(stmt, ast.ImportFrom) for alias in stmt.names}
    assert checked == set(vidprompt._LAZY)  # what editors see is what the package serves
    assert set(vidprompt._LAZY) <= set(vidprompt.__all__)
    for name in vidprompt.__all__:
        assert getattr(vidprompt, name) is not None
