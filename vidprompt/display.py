"""Names as they can be shown: one message is one line, whatever bytes a file name holds.

Linux file names are bytes. Python hands the ones that are not UTF-8 over as lone surrogates, which cannot be
printed or written as UTF-8; a name can also hold a newline or a terminal escape sequence. Messages and
tables show such characters as Python escapes (``\\n``, ``\\x1b``, ``\\xe9``); JSON and CSV keep control
characters (both formats quote them) and escape only the bytes that are not UTF-8.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def undecodable_escaped(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 (surrogate escapes) written as ``\\xNN``: always encodable."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """``text`` on one line, safe for a terminal: control characters and undecodable bytes escaped."""
    text = undecodable_escaped(text)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
