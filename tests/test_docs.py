"""The documentation's links: every relative link in a tracked Markdown file resolves inside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_DEFINITION = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "*.md"], cwd=REPO_ROOT, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):  # an unpacked sdist: no git
        return sorted(p for p in REPO_ROOT.rglob("*.md") if not {".venv", ".dot", ".git"} & set(p.parts))
    return sorted(REPO_ROOT / name for name in listed.split("\0") if name)


def relative_links(text: str) -> list[str]:
    """The link targets of `text` that are paths (not URLs, not anchors), outside code."""
    prose = _CODE.sub("", _FENCE.sub("", text))
    targets = _INLINE.findall(prose) + _DEFINITION.findall(prose)
    return [t for t in targets if not _SCHEME.match(t) and not t.startswith("#")]


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        where = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (REPO_ROOT / where.lstrip("/")) if where.startswith("/") else (path.parent / where)
        resolved = resolved.resolve()
        if not resolved.is_relative_to(REPO_ROOT):
            problems.append(f"{target} points outside the repository")
        elif not resolved.exists():
            problems.append(f"{target} does not exist")
    return problems


def test_every_relative_markdown_link_resolves_inside_the_repository() -> None:
    files = markdown_files()
    assert REPO_ROOT / "README.md" in files and REPO_ROOT / "docs" / "design.md" in files
    problems = {str(p.relative_to(REPO_ROOT)): broken for p in files if (broken := broken_links(p))}
    assert problems == {}


def test_the_link_checker_sees_what_it_must(tmp_path: Path) -> None:
    text = (
        "See [the design](docs/design.md#the-guard), [ADR](../shared/adr/0001.md), "
        "[site](https://example.com), [top](#top) and ![img](img/a.png \"title\").\n"
        "```sh\n[not](a-link.md)\n```\n`[nor](this.md)`\n[ref]: ../outside.md\n"
    )
    assert relative_links(text) == ["docs/design.md#the-guard", "../shared/adr/0001.md", "img/a.png",
                                    "../outside.md"]
    readme = REPO_ROOT / "README.md"
    assert relative_links(readme.read_text()) and "docs/design.md" in relative_links(readme.read_text())
