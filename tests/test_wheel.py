"""A wheel built from the repository, installed into a fresh virtual environment, finds its data."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_installed_wheel_proves_a_builtin_network(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("derive-*.whl")
    env_dir = tmp_path / "env"
    # no pip of its own (ensurepip took 6 s): this environment's pip installs into it (--python)
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # The dependencies come from this test's environment (a path entry, not its .pth
    # files, so the editable checkout of derive stays invisible); derive itself
    # comes only from the wheel.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
                   check=True)

    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(python), "-c", "import derive, derive.proof.formulas as f, derive.report.labels as r; print(derive.__file__); "
                            "print(f.formulas_dir()); print(r.templates_dir())"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=clean,
    ).stdout.split()
    assert all(str(env_dir) in w for w in where), where

    result = subprocess.run(
        [str(env_dir / "bin" / "derive"), "prove", "generic-2-3-2"],
        capture_output=True, text=True, cwd=tmp_path, env=clean,
    )
    assert result.returncode == 0, result.stderr
    assert "nielsen  BP4" in result.stdout and "0 refuted, 0 undecided" in result.stdout

    # the report templates ship too: a report renders (and compiles) from the wheel alone
    report = subprocess.run(
        [str(env_dir / "bin" / "derive"), "report", "generic-2-3-2", "-o", "r.pdf"],
        capture_output=True, text=True, cwd=tmp_path, env=clean,
    )
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r.pdf").exists() and (tmp_path / "r.tex").read_text().startswith("\\documentclass")
