"""The README starts fast and every link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lowercase, punctuation out, spaces to -."""
    found: set[str] = set()
    for line in prose_lines(page):
        match = HEADING.match(line)
        if match:
            # Links keep their text; backticks and emphasis go; "_" stays, as on GitHub.
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))
            text = re.sub(r"[`*]", "", text).strip().lower()
            slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            base, n = slug, 1
            while slug in found:
                slug, n = f"{base}-{n}", n + 1
            found.add(slug)
    return found


def links(page: Path) -> list[str]:
    targets = []
    for line in prose_lines(page):
        for match in LINK.finditer(line):
            targets.append(match.group(1) or match.group(2))
    return targets


def test_there_is_a_reference_to_link_to() -> None:
    assert (ROOT / "docs" / "README.md").exists()
    assert len(PAGES) >= 5


def test_readme_starts_fast() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250
    assert any("make demo" in line for line in lines[:40])
    assert any("make test" in line for line in lines[:40])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not checked offline
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{page.name}: {broken}"


def test_every_docs_page_is_in_the_table_of_contents() -> None:
    listed = set(links(ROOT / "docs" / "README.md"))
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert page.name in listed, f"docs/README.md does not list {page.name}"


def test_the_configuration_page_lists_every_variable() -> None:
    """Every FANOUT_ variable the package names has a row in docs/configuration.md."""
    named = set()
    for source in [*(ROOT / "fanout_core").rglob("*.py"), *(ROOT / "strategies").rglob("*.py")]:
        named |= set(re.findall(r"[\"'](FANOUT_[A-Z_]+)[\"']", source.read_text()))
    rows = {
        match.group(1)
        for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()
        if (match := re.match(r"\| `(FANOUT_[A-Z_]+)` \|", line))
    }
    assert "FANOUT_TABLE" in named  # the search finds what it looks for
    assert named - rows == set()
