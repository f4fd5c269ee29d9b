"""The wheel carries the template, the dbt operations project, the CI recipe and the report's assets, and finds them once installed."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, a directory it is installed into), built once for this module."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(where), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(where.glob("dot_tasks-*.whl"))
    target = where / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True, capture_output=True
    )
    return wheel, target


def _from_installed(target: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The installed copy first, then this environment's dependencies (invoke, pygit2, ...).
    path = os.pathsep.join([str(target), *[p for p in sys.path if p and "site-packages" in p]])
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )


def test_installed_wheel_finds_its_template(installed: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, target = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "dot_tasks/templates/profiles.yml.j2" in names
    assert "dot_tasks/dbt_ops/macros/dot_drop_schemas.sql" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    found = _from_installed(target, "from dot_tasks.templating import template_dir; print(template_dir())", tmp_path)
    assert found.stdout.strip() == str(target / "dot_tasks" / "templates"), found.stderr


def test_the_ci_recipe_ships_and_prints_from_an_installed_copy(installed: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, target = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {"dot_tasks/ci/github-actions.yml", "dot_tasks/ci/slim-ci.sh"} <= set(names)
    for name, file in (("github", "github-actions.yml"), ("shell", "slim-ci.sh")):
        printed = _from_installed(
            target,
            "import dot_tasks, sys; from dot_tasks.main import program; "
            f"assert dot_tasks.__file__.startswith({str(target)!r}); "
            f"program.run(['dot-tasks', 'ci-recipe', {name!r}])",
            tmp_path,
        )
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == (ROOT / "examples" / "ci" / file).read_text()
    listed = _from_installed(target, "from dot_tasks.main import program; program.run(['dot-tasks', 'ci-recipe'])", tmp_path)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["github", "shell"], listed.stderr
    wrong = _from_installed(target, "from dot_tasks.main import program; program.run(['dot-tasks', 'ci-recipe', 'x'])", tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.startswith("dot-tasks: no CI recipe named 'x'"), wrong.stderr


def test_the_report_assets_ship_and_an_installed_copy_inlines_them(installed: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, target = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {"dot_tasks/report/report.js", "dot_tasks/report/report.css"} <= set(names)
    rendered = _from_installed(
        target,
        "import sys, dot_tasks; from dot_tasks.report import render_html; "
        f"assert dot_tasks.__file__.startswith({str(target)!r}); "
        "sys.stdout.write(render_html({}))",
        tmp_path,
    )
    assert rendered.returncode == 0, rendered.stderr
    from dot_tasks.report import render_html

    assert rendered.stdout == render_html({})
    assert (ROOT / "dot_tasks" / "report" / "report.js").read_text(encoding="utf-8") in rendered.stdout


def test_the_package_index_gets_the_project_urls(installed: tuple[Path, Path]) -> None:
    _wheel, target = installed
    metadata_file = next(target.glob("dot_tasks-*.dist-info")) / "METADATA"
    metadata = email.message_from_string(metadata_file.read_text(encoding="utf-8"))
    urls = dict(value.split(", ", 1) for value in metadata.get_all("Project-URL"))
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert urls["Repository"] == repository and {"Homepage", "Documentation", "Issues"} <= set(urls)


def test_spark_is_an_extra_and_the_core_install_stays_light() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "spark" in d.lower()]
    assert [d.split(">")[0] for d in project["optional-dependencies"]["spark"]] == ["dbt-spark[session,PyHive]"]
