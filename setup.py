"""Builds the C kernels through cffi; everything else lives in pyproject.toml."""

import os

from setuptools import setup

native = [] if os.environ.get("WB_NATIVE") == "0" else ["native/build.py:ffibuilder"]
setup(cffi_modules=native)
