"""The package builds as a wheel whose installed `pgautomator` command works
(what `pip install ./python` gives a user)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pgautomator

PACKAGE = Path(__file__).resolve().parents[1]


def test_wheel_installs_a_working_command(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(PACKAGE)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("pgautomator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"pgautomator-{pgautomator.__version__}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {"pgautomator/py.typed", "pgautomator/executors/shell.py", "pgautomator/cli.py"} <= names
    assert not any(name.startswith("tests/") for name in names)
    assert f"{info}/licenses/LICENSE" in names  # the licence travels with the package
    assert metadata["Version"] == pgautomator.__version__
    requires = metadata.get_all("Requires-Dist") or []
    assert any(req.startswith("psycopg[binary]") for req in requires)
    assert any(req.startswith("PyYAML") for req in requires)
    assert "pgautomator = pgautomator.cli:main" in entry_points

    # Installed apart from the source tree, the console script runs.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGAUTOMATOR_")}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run(
        [str(target / "bin" / "pgautomator"), "agent", "--db-name", "jobs", "--check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "db_name: jobs" in done.stdout
    located = subprocess.run(
        [sys.executable, "-P", "-c", "import pgautomator; print(pgautomator.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert located.stdout.startswith(str(target))
