"""The packages are layers (adchain_assets/__init__.py): a module imports only from its own layer and the ones
before it, the pure layers import neither Dagster nor a model SDK, and nothing below the Dagster definitions
imports Dagster. Read from the source, so an import inside a function counts too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "adchain_assets"
LAYERS = ["brief", "plan", "media", "providers", "store", "vision", "settings", "defs", "definitions", "preload", "cli"]
PURE = {"brief", "plan", "media"}
NO_DAGSTER = {"brief", "plan", "media", "providers", "store", "vision", "settings"}
SDKS = ("google", "httpx2", "httpx", "dagster")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if parts[0] != "__init__" else "package"


def imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "adchain_assets":
                found |= {f"adchain_assets.{alias.name}" for alias in node.names}
    return found


def project_layer(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path):
    mine = layer_of(path)
    if mine == "package":
        return
    rank = LAYERS.index(mine)
    for module in imported(path):
        if module.startswith("adchain_assets."):
            theirs = project_layer(module)
            assert LAYERS.index(theirs) <= rank, f"{path.name} ({mine}) imports {module} ({theirs}), a layer above it"
        top = module.split(".")[0]
        if mine in PURE:
            assert top not in SDKS, f"{path.name} is in the pure layer {mine} but imports {module}"
        if mine in NO_DAGSTER:
            assert top != "dagster", f"{path.name} ({mine}) imports Dagster"


def test_every_package_says_what_it_owns():
    for package in [p for p in PACKAGE.rglob("__init__.py")]:
        doc = ast.get_docstring(ast.parse(package.read_text()))
        assert doc and len(doc) > 40, f"{package.relative_to(PACKAGE)} has no docstring saying what it owns"


def test_dagster_is_imported_one_way():
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dagster":
                pytest.fail(f"{path.relative_to(PACKAGE)}: `from {node.module} import ...`; use `import dagster as dg`")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "dagster":
                        assert alias.asname == "dg", f"{path.relative_to(PACKAGE)}: import dagster as dg"


def test_no_private_names_of_dagster_or_google_genai():
    for path in modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] + [a.name for a in node.names] if isinstance(node, ast.ImportFrom) \
                    else [a.name for a in node.names]
                top = (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else names[0].split(".")[0]
                if top in ("dagster", "google"):
                    assert not any(part.startswith("_") for name in names for part in name.split(".")), (
                        f"{path.relative_to(PACKAGE)} imports a private name: {names}")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("dg", "genai", "types"):
                assert not node.attr.startswith("_"), f"{path.relative_to(PACKAGE)}: {node.value.id}.{node.attr}"


# Modules whose distribution does not list them among its top-level names (a compiled module at the top).
UNLISTED = {"dlib": {"dlib-bin"}}


def test_every_package_the_project_imports_is_declared():
    """A module imported by adchain_assets comes from the standard library or from a distribution that
    pyproject.toml declares (the `stack` extra for what only the production stack imports)."""
    import importlib.metadata
    import re
    import sys
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["stack"]
    names = {re.split(r"[<>=\[ ;]", spec)[0].lower().replace("_", "-") for spec in declared}
    distributions = importlib.metadata.packages_distributions()
    for path in modules():
        for module in imported(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in ("adchain_assets", "__future__"):
                continue
            owners = {d.lower().replace("_", "-") for d in distributions.get(top, [])} or UNLISTED.get(top, set())
            assert owners & names, f"{path.relative_to(PACKAGE)} imports {top} ({owners or 'not installed'}): not declared"
