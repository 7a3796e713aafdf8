"""Skipping tests that need Debian's Apertium pairs when they are not installed."""

import pytest

from workers.apertium import installed_modes


def missing_modes(*modes: str) -> list[str]:
    return [mode for mode in modes if mode not in installed_modes()]


def needs_modes(*modes: str) -> pytest.MarkDecorator:
    """Skip unless every mode in `modes` is installed (`make system-deps` installs them, as root)."""
    missing = missing_modes(*modes)
    return pytest.mark.skipif(
        bool(missing),
        reason=f"Apertium modes {missing} not installed: apt-get install apertium and its pairs "
        "(make system-deps does it as root)",
    )
