"""Exercises: learners write the kernels; the workbench checks them in a child process and races them."""
