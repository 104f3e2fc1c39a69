"""The docs the code cites are in the repository: no citation of notes that live elsewhere, and every
`docs/<page>.md#<heading>` named in code, tests, benchmarks or the docs themselves exists."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Notes that were never part of the repository; what the code relies on is explained in docs/.
#: (Character classes keep this file from matching its own pattern.)
FOREIGN = re.compile(r"nvml-note[s]|genai-attribute[s]|DESIGN\.md|pitfal[l]", re.IGNORECASE)
#: `docs/gpus.md#the-update-grid` in code; `gpus.md#the-update-grid` or `(gpus.md)` inside docs/.
CITATION = re.compile(r"(?:\bdocs/|(?<=\]\())([a-z][a-z0-9-]*\.md)(?:#([\w-]+))?")


def _tracked(*suffixes: str) -> list[Path]:
    """The repository's tracked and new files with these suffixes."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed if name.endswith(suffixes)]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (a repeated heading gets `-1`, `-2`, ... as on GitHub)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _citations(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, page, anchor or None) of each docs page a file cites."""
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        for match in CITATION.finditer(line):
            yield number, match.group(1), match.group(2)


def test_nothing_cites_notes_kept_outside_the_repository() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in _tracked(".py", ".c", ".md")
             for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if FOREIGN.search(line)]
    assert found == []


def test_every_cited_docs_page_and_heading_exists() -> None:
    anchors = {page.name: _anchors(page) for page in DOCS.glob("*.md")}
    broken = []
    for path in _tracked(".py", ".c", ".md"):
        in_docs = path.parent == DOCS
        for number, page, anchor in _citations(path):
            if page not in anchors:
                # A page that docs/ links without an anchor may still be on its way; code may not cite one.
                if not in_docs or anchor is not None:
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {page} does not exist")
            elif anchor is not None and anchor not in anchors[page]:
                broken.append(f"{path.relative_to(ROOT)}:{number}: {page} has no heading #{anchor}")
    assert broken == []


@pytest.mark.parametrize(("heading", "anchor"), [
    ("The counter's startup check", "the-counters-startup-check"),
    ("The 1 s average", "the-1-s-average"),
    ("Policies: concurrent steps on one GPU", "policies-concurrent-steps-on-one-gpu"),
    ("samples.csv", "samplescsv"),
])
def test_anchors_are_made_as_github_makes_them(heading: str, anchor: str) -> None:
    assert _slug(heading) == anchor
