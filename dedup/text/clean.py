"""Cleaning before fingerprinting: what is cut here stays in the stored article, out of the
fingerprint.

For now one step: a whole article appended after a "إقرأ أيضاً:" line (a marker on a line of its
own, followed by a full text) is split off, so the page is matched on its own story.
"""

from __future__ import annotations

from dedup.text.normalize import normalize

_READ_ALSO = {"اقرا ايضا", "اقرا المزيد", "اقرا كذلك"}
_MIN_APPENDED_WORDS = 40


def main_segment(text: str) -> str:
    """The text before an appended article, or the whole text when there is none.

    >>> main_segment("خبر اول\\nإقرأ أيضاً:\\n" + "كلمة " * 50).strip()
    'خبر اول'
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        # The colon separates the appended-article marker from the in-body link blocks
        # (a bare "اقرأ أيضاً" line followed by one linked headline).
        if i > 0 and line.rstrip().endswith(":") and normalize(line) in _READ_ALSO:
            rest = " ".join(lines[i + 1 :]).split()
            if len(rest) >= _MIN_APPENDED_WORDS:
                return "\n".join(lines[:i])
    return text
