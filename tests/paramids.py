"""Test ids that are the same in every process (pytest-xdist workers must collect identical ids)."""

from __future__ import annotations

import re

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stable_repr(value: object) -> str:
    """repr(value) without memory addresses: '<object object>' instead of '<object object at 0x7f…>'."""
    return _ADDRESS.sub("", repr(value))
