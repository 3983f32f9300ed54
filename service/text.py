"""Text from outside (requests, uploaded certificates) made safe to show in messages and logs."""

from __future__ import annotations

import re

# C0 and C1 control characters and the Unicode line and paragraph separators.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control_characters(text: str) -> str:
    """Return text with each control character written as a Python escape (\\n, \\x1b)."""
    if _CONTROL_CHARACTERS.search(text) is None:
        return text
    return _CONTROL_CHARACTERS.sub(
        lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
