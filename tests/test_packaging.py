"""The wheel carries the template and the dbt operations project, and finds them once installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_installed_wheel_finds_its_template(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("dot_tasks-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dot_tasks/templates/profiles.yml.j2" in names
    assert "dot_tasks/dbt_ops/macros/dot_drop_schemas.sql" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    found = subprocess.run(
        [sys.executable, "-c", "from dot_tasks.templating import template_dir; print(template_dir())"],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
    )
    assert found.stdout.strip() == str(target / "dot_tasks" / "templates"), found.stderr


def test_spark_is_an_extra_and_the_core_install_stays_light() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "spark" in d.lower()]
    assert [d.split(">")[0] for d in project["optional-dependencies"]["spark"]] == ["dbt-spark[session,PyHive]"]
