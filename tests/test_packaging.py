"""What `pip install .` puts into site-packages (issue 19: no generic top-level names)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_a_plain_install_names_its_packages_distinctively(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, env={"WB_NATIVE": "0", "PATH": "/usr/bin:/bin",
                                                                           "HOME": str(tmp_path)}, capture_output=True)
    top = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")} - {"bin"}
    assert top == {"workbench", "workbench_engines", "workbench_lessons"}
    assert (target / "workbench_lessons" / "attention" / "track.toml").is_file()
    assert (target / "workbench_engines" / "models" / "weights" / "target.pt").is_file()
    # Imported from outside the repository, the installed copy is what loads.
    code = ("import workbench_engines, workbench_lessons, workbench.curriculum as c; "
            "print(workbench_engines.__file__); print(len(c.load_curriculum().lessons))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith(str(target)) and int(out[1]) >= 40


@pytest.mark.slow
def test_the_wheel_and_the_sdist_ship_the_cuda_sources(tmp_path):
    # Issue 18: a plain install had no native/cuda, so cuda_status() raised FileNotFoundError on a GPU machine.
    import tarfile
    import zipfile

    hooks = ("import sys, setuptools.build_meta as b; out = sys.argv[1]; "  # the wheel build rewrites sys.argv
             "b.build_wheel(out); b.build_sdist(out)")
    subprocess.run([sys.executable, "-c", hooks, str(tmp_path)], cwd=ROOT, check=True, capture_output=True,
                   env={"WB_NATIVE": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    with zipfile.ZipFile(next(tmp_path.glob("*.whl"))) as archive:
        wheel = archive.namelist()
    with tarfile.open(next(tmp_path.glob("*.tar.gz"))) as archive:
        sdist = archive.getnames()
    needed = ["cuda/wb_attention.cu", "cuda/wb_attention_cuda.h", "include/wb_status.h", "include/wb_attention.h",
              "include/wb_checked.h", "src/wb_status.c"]
    for name in needed:
        assert f"workbench_engines/native_sources/{name}" in wheel, name
        assert any(member.endswith(f"/native/{name}") for member in sdist), name
