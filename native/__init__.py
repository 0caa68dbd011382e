"""The C and CUDA sources, installed as package data (``workbench_engines.native_sources``).

Nothing here runs: the package exists so that ``importlib.resources`` finds
native/cuda, native/include and native/src in an editable and a plain
install alike, and engines/cudalib.py can hand them to nvcc on a GPU machine.
"""
