"""The README and the pages it links to say what the project is: the environment table is exactly the settings'
``VARIABLES``, the README stays a door (at most 130 lines, with its picture), every relative link resolves, and
every module, file, ``make`` target and ``adchain`` command the docs name exists. Text only: no run, well under
a second."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adchain_assets.settings import VARIABLES

from .helpers import PROJECT

README = PROJECT / "README.md"
PICTURE = PROJECT / "docs" / "storyboard.png"
MAX_README_LINES = 130
MAX_PICTURE_BYTES = 250_000
MAX_PICTURE_WIDTH = 600
# Every page a newcomer may be sent to: the README, docs/ and the two runbooks.
PAGES = sorted([README, *(PROJECT / "docs").glob("*.md"), PROJECT / "deploy" / "README.md",
                PROJECT / "benchmarks" / "README.md"])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MODULE = re.compile(r"\badchain_assets(?:_tests)?(?:\.[A-Za-z_]\w*)+")
REPO_PATH = re.compile(r"(?<![\w/.<])(?:adchain_assets(?:_tests)?|benchmarks|scripts|docs|deploy)/[\w/.-]*\w")
MAKE = re.compile(r"(?:`|^)make ([a-z][\w-]*)", re.MULTILINE)
ADCHAIN = re.compile(r"(?:`|^|\bbin/)adchain ([a-z][\w-]*)", re.MULTILINE)


def ids(pages: list[Path]) -> list[str]:
    return [str(p.relative_to(PROJECT)) for p in pages]


def environment_table(text: str) -> list[dict[str, str]]:
    """The rows of the table under the README's ``## Environment`` heading, by the header's column names."""
    section = text.split("\n## Environment\n", 1)
    assert len(section) == 2, "README.md has no '## Environment' section"
    lines = [line.strip() for line in section[1].split("\n## ", 1)[0].splitlines() if line.strip().startswith("|")]
    assert len(lines) > 2, "README.md: no table under '## Environment'"

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line))) for line in lines[2:]]


def test_readme_is_a_door():
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; at most {MAX_README_LINES}: move detail to docs/"


def test_the_environment_table_is_the_settings():
    rows = environment_table(README.read_text())
    names = [row["variable"].strip("`") for row in rows]
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names), f"one variable per row, in backticks: {names}"
    duplicated = sorted({name for name in names if names.count(name) > 1})
    assert not duplicated, f"README.md lists {duplicated} more than once"
    wanted = {v.name: v.default for v in VARIABLES}
    shown = {name: row["default"] for name, row in zip(names, rows)}
    assert not sorted(set(wanted) - set(shown)), (
        f"settings.VARIABLES has {sorted(set(wanted) - set(shown))}, missing from README.md's environment table")
    assert not sorted(set(shown) - set(wanted)), (
        f"README.md's environment table lists {sorted(set(shown) - set(wanted))}, which settings.VARIABLES does not")
    differ = {name: (shown[name], default) for name, default in wanted.items() if shown[name] != default}
    assert not differ, f"defaults differ (README.md, settings.VARIABLES): {differ}"


def test_the_picture_is_committed_small_and_shown():
    from PIL import Image

    assert PICTURE.is_file(), f"{PICTURE.relative_to(PROJECT)} is missing: `make picture` makes it"
    assert PICTURE.stat().st_size < MAX_PICTURE_BYTES, f"{PICTURE.name}: {PICTURE.stat().st_size} bytes"
    with Image.open(PICTURE) as image:
        assert image.format == "PNG" and image.width <= MAX_PICTURE_WIDTH, (image.format, image.size)
    shown = [target for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README.read_text())]
    assert "docs/storyboard.png" in shown, f"README.md shows no docs/storyboard.png (images: {shown})"


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or a heading of this page
        if not (page.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(PROJECT)} links to what does not exist: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / target.split("#", 1)[0]).resolve() for target in LINK.findall(README.read_text())}
    unlinked = [p.name for p in sorted((PROJECT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs/ pages the README does not link to: {unlinked}"


def defined_in(source: Path, name: str) -> bool:
    pattern = rf"^\s*(?:def|class|async def) {re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    return re.search(pattern, source.read_text(), re.MULTILINE) is not None


def module_exists(dotted: str) -> bool:
    """``adchain_assets.cli.runs`` or ``adchain_assets.cli.runs.campaign_job``: a module, or a name it defines."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = PROJECT.joinpath(*parts[:cut])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if source.is_file():
            rest = parts[cut:]
            return not rest or (len(rest) == 1 and defined_in(source, rest[0]))
    return False


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_every_module_and_file_named_exists(page):
    text = page.read_text()
    missing = sorted({m for m in MODULE.findall(text) if not module_exists(m)})
    missing += sorted({p for p in REPO_PATH.findall(text)
                       if not p.startswith("deploy/.stack") and not (PROJECT / p).exists()})
    assert not missing, f"{page.relative_to(PROJECT)} names what the repository does not have: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_every_command_named_exists(page):
    from adchain_assets.cli.main import build_parser

    text = page.read_text()
    targets = set(re.findall(r"^([\w.-]+):", (PROJECT / "Makefile").read_text(), re.MULTILINE))
    commands = set(re.search(r"\{([\w,-]+)\}", build_parser().format_usage()).group(1).split(","))
    unknown = sorted({f"make {t}" for t in MAKE.findall(text) if t not in targets})
    unknown += sorted({f"adchain {c}" for c in ADCHAIN.findall(text) if c not in commands})
    assert not unknown, f"{page.relative_to(PROJECT)} names commands that do not exist: {unknown}"
