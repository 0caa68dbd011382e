"""Lesson content: one folder per track, read with importlib.resources (no code here)."""
