"""Builds the C kernels through cffi and maps the repository's folders to installed packages.

engines/ and lessons/ install as workbench_engines and workbench_lessons
(pyproject.toml's package-dir); their subpackages are found here so a new
one needs no listing.
"""

import os

from setuptools import find_packages, setup


def packages() -> list[str]:
    found = find_packages(include=["workbench", "workbench.*"])
    for folder, name in (("engines", "workbench_engines"), ("lessons", "workbench_lessons")):
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found + ["workbench_engines.native_sources"]  # native/: the CUDA sources as package data


native = [] if os.environ.get("WB_NATIVE") == "0" else ["native/build.py:ffibuilder"]
setup(packages=packages(), cffi_modules=native)
