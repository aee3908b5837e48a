"""The README and docs/: every relative link points at a file that exists and, with an
anchor, at a heading that file has (GitHub's anchor rules); the quick start stays short."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    """The text without fenced code blocks (a '# comment' there is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped,
    spaces turned into '-'."""
    heads = re.findall(r"^#+ (.+)$", _outside_code(path.read_text()), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_docs_exist():
    names = {p.name for p in DOCS}
    assert {"README.md", "detect.md", "watch.md", "weights.md", "development.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path):
    bad = []
    for target in LINK.findall(_outside_code(doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s)://, mailto: ... are not checked offline
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{doc.name}: " + "; ".join(bad)


def test_quick_start_at_most_20_lines():
    text = (ROOT / "README.md").read_text()
    quick = re.search(r"^## Quick start\n(.*?)^## ", text, flags=re.S | re.M)
    assert quick, "README.md has no '## Quick start' section followed by another"
    lines = quick.group(1).strip("\n").splitlines()
    assert len(lines) <= 20, f"quick start is {len(lines)} lines"
    for needed in ("VIOLENCE_DETECT_WEIGHTS", "weights download"):
        assert needed in quick.group(1)
