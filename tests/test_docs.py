"""The documentation's links: every relative link in a tracked Markdown file resolves inside the repository,
and the README, as a package index shows it, links only to files of the repository that exist."""

from __future__ import annotations

import email
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_DEFINITION = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "*.md"], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):  # an unpacked sdist: no git
        return sorted(p for p in REPO_ROOT.rglob("*.md") if not {".venv", ".dot", ".git"} & set(p.parts))
    return sorted(REPO_ROOT / name for name in listed.split("\0") if name)


def links(text: str) -> list[str]:
    """Every link target of `text`, outside code."""
    prose = _CODE.sub("", _FENCE.sub("", text))
    return _INLINE.findall(prose) + _DEFINITION.findall(prose)


def relative_links(text: str) -> list[str]:
    """The link targets of `text` that are paths (not URLs, not anchors), outside code."""
    return [t for t in links(text) if not _SCHEME.match(t) and not t.startswith("#")]


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
        '[site](https://example.com), [top](#top) and ![img](img/a.png "title").\n'
        "```sh\n[not](a-link.md)\n```\n`[nor](this.md)`\n[ref]: ../outside.md\n"
    )
    assert relative_links(text) == ["docs/design.md#the-guard", "../shared/adr/0001.md", "img/a.png", "../outside.md"]
    assert links("[a](https://x.org/a) [b](#b)") == ["https://x.org/a", "#b"]
    r = "https://x.org/r"
    assert readme_problems(
        f"[a](docs/a.md) [b](#top) [c]({r}/blob/main/nope.md) [d]({r}/blob/main/README.md) "
        f"[e]({r}/tree/main/docs) [f]({r}/wiki) [g]({r}/blob/main/../x)",
        r,
    ) == [
        "docs/a.md is relative: dead on the package index",
        "#top is an anchor: dead on the package index",
        f"{r}/blob/main/nope.md names no file of the repository",
        f"{r}/wiki is not {r}/blob/main/<file> or {r}/tree/main/<dir>",
        f"{r}/blob/main/../x names no file of the repository",
    ]


def repository_url() -> str:
    """The one place the repository's address is written: pyproject's [project.urls]."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def readme_problems(text: str, repository: str) -> list[str]:
    """What a package index's page of `text` would get wrong: relative links, and links to missing files."""
    problems = []
    for target in links(text):
        if target.startswith("#"):
            problems.append(f"{target} is an anchor: dead on the package index")
        elif not _SCHEME.match(target):
            problems.append(f"{target} is relative: dead on the package index")
        elif target.startswith(repository + "/") or target == repository:
            where = re.fullmatch(re.escape(repository) + r"/(blob|tree)/main/([^#?]+)(?:#.*)?", target)
            if where is None:
                problems.append(f"{target} is not {repository}/blob/main/<file> or {repository}/tree/main/<dir>")
            elif not (REPO_ROOT / where.group(2)).exists() or ".." in where.group(2).split("/"):
                problems.append(f"{target} names no file of the repository")
    return problems


def test_the_readme_works_from_the_package_index(tmp_path: Path) -> None:
    """The README as the wheel carries it (the package index's page): absolute links to files that exist."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = zipfile.ZipFile(next(tmp_path.glob("dot_tasks-*.whl")))
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    page = email.message_from_string(metadata).get_payload()
    assert page.strip() == (REPO_ROOT / "README.md").read_text(encoding="utf-8").strip()
    repository = repository_url()
    into_repository = [t for t in links(page) if t.startswith(repository + "/")]
    assert f"{repository}/blob/main/docs/design.md" in into_repository
    assert readme_problems(page, repository) == []
