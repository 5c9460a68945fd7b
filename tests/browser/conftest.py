"""Collected only when a Chromium is found (tests/conftest.py prints the one line saying the
tier was skipped otherwise): decided once, at collection, never a skip per test."""

from tests.browser import find_chromium

collect_ignore_glob = [] if find_chromium() else ["test_*.py"]
