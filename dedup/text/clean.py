"""Cleaning before fingerprinting: what is cut here stays in the stored article, out of the
fingerprint.

Pages and feed bodies come wrapped in page furniture. :func:`clean` drops, line by line:

* navigation and menu lines (bullets, runs of one- and two-word lines), login boxes, share
  counts, footers, date stamps ("تاريخ النشر");
* in-body "اقرأ أيضاً" link blocks (the marker and the linked headline after it);
* tag lines ("كلمات دلالية: ..."), embedded-tweet residue ("— Name (@handle) November 19, 2024");
* everything after an end-of-article marker: "مقالات مشابهة" / "أخبار ذات صلة" lists and comment
  forms ("اترك تعليقاً");
* credit lines ("المصدر: ...", read by :mod:`dedup.text.credits` before they are dropped), which
  differ from one carrier of a story to the next.

A whole article appended after a marker line such as "إقرأ أيضاً:" is split off as a segment of its
own, so the page is matched on its own story and the appended one can be matched on its.

Text that many articles share without being on these lists (an outlet's own slogans, the fixed
wording of templates) is learned from the data instead: the matcher does not count shingles
seen in many articles (see :mod:`dedup.match`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dedup.text.normalize import normalize

_READ_ALSO = {"اقرا ايضا", "اقرا المزيد", "اقرا كذلك", "اقرا ايضا في", "شاهد ايضا"}
_MIN_APPENDED_WORDS = 40

# Markers after which the rest of the page is furniture (normalized, whole line).
_END_MARKERS = {
    "مقالات مشابهه", "مقالات ذات صله", "اخبار ذات صله", "مواضيع ذات صله", "مواضيع متعلقه", "الاكثر قراءه",
    "اخبار متعلقه", "قد يهمك ايضا", "اترك تعليقا", "اترك تعليق", "اضف تعليق", "اضف تعليقك", "التعليقات",
    "leave a reply", "related posts", "related articles", "you may also like",
}
# Whole-line furniture (normalized, whole line).
_FURNITURE = {
    "login", "log in", "sign in", "logout", "register", "home", "no result", "view all result", "welcome back",
    "forgotten password", "retrieve your password", "about", "advertise", "privacy policy", "privacy", "contact",
    "contact us", "تسجيل الدخول", "تسجيل الخروج", "الرئيسيه", "اتصل بنا", "من نحن", "سياسه الخصوصيه",
    "شارك", "شارك الخبر", "مشاركه", "طباعه", "ارسال", "تابعنا", "تابعونا",
}
# Furniture recognised by its opening words, on the raw line (letter variants spelled out).
_FURNITURE_PATTERNS = re.compile(
    r"""^\s*(?:
        (?:share|tweet|شارك|غرد)\s*\d*(?:\s*(?:share|tweet|شارك|غرد)\s*\d*)*$           # share counts
      | (?:copyright|©|جميع\s+الحقوق\s+محفوظ[ةه]|حقوق\s+النشر|all\s+rights\s+reserved)   # footers
      | (?:whatsapp|واتساب|هاتف|phone|e-?mail|البريد\s+ال[إا]لكتروني)\s*:?[^\n]*\d        # contact lines
      | (?:تاريخ\s+النشر|[آا]خر\s+تحديث|published|updated)\s*:                            # date stamps
      | (?:كلمات\s+دلالي[ةه]|الكلمات\s+المفتاحي[ةه]|الوسوم|tags)\s*:?                        # tag lines
      | (?:login|log\s+in)\s+to\s+your\s+account
      | please\s+enter\s+your\s+username
      | you\s+cannot\s+copy\s+content
      | لن\s+يتم\s+نشر\s+عنوان\s+بريدك | الحقول\s+ال[إا]لزامي[ةه]
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_TWEET = re.compile(r"pic\.twitter\.com|twitter\.com/\w+/status|\(@\w{1,15}\)\s+\w+\s+\d{1,2},\s+\d{4}")
_BULLET = re.compile(r"^\s*[•·▪►◄■●]\s*")
_SOURCE = re.compile(r"^\s*(?:المصدر(?: الأصلي| الاصلي)?|مصدر الخبر|source)\s*[:|/\-–—]", re.IGNORECASE)
_MENU_RUN = 3
# A date stamp line: only weekday and month names, numbers and "in"/"في" (normalized words).
_DATE_WORDS = frozenset(normalize(
    "الأحد الاثنين الإثنين الثلاثاء الأربعاء الخميس الجمعة السبت يناير فبراير مارس أبريل ابريل مايو يونيو "
    "يوليو أغسطس اغسطس سبتمبر أكتوبر اكتوبر نوفمبر ديسمبر كانون الثاني شباط آذار نيسان أيار حزيران تموز آب أيلول "
    "تشرين الأول هـ م الموافق am pm gmt sunday monday tuesday wednesday thursday friday saturday january "
    "february march april may june july august september october november december in"
).split())  # this many one- or two-word lines in a row are a menu


def _words(line: str) -> int:
    """The number of words of a line, or 99 for a long one (counting those costs, and no rule
    here looks at lines of more than 20 words)."""
    return len(line.split()) if len(line) <= 200 else 99


@dataclass(frozen=True, slots=True)
class Cleaned:
    """A page split into its own text, the whole articles appended to it, and what was dropped."""

    main: str
    embedded: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    source_lines: tuple[str, ...] = ()  # the lines of ``main`` with its credit lines still in

    @property
    def with_sources(self) -> str:
        """``main`` with its credit lines still in (where credits are read), as one text."""
        return "\n".join(self.source_lines)


# Where str.splitlines cuts a line besides "\n".
_OTHER_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _lines(text: str) -> list[str]:
    """``text.splitlines()``: when "\n" is the only line break in ``text`` (nine one-character
    searches say so), a split at "\n", which takes a third of the time on an Arabic page."""
    for c in _OTHER_BREAKS:
        if c in text:
            return text.splitlines()
    lines = text.split("\n")
    if not lines[-1]:  # splitlines has no empty line after a final break (nor for "")
        lines.pop()
    return lines


def _appended_at(lines: list[str]) -> int | None:
    """Where an appended article's marker line is, if there is one."""
    for i, line in enumerate(lines):
        # The colon separates the appended-article marker from the in-body link blocks
        # (a bare "اقرأ أيضاً" line followed by one linked headline).
        if i > 0 and len(line) < 40 and line.rstrip().endswith(":") and normalize(line) in _READ_ALSO:
            # At least so many words after it (counted a line at a time, up to the number needed).
            words = 0
            for later in lines[i + 1 :]:
                words += len(later.split(None, _MIN_APPENDED_WORDS - words))
                if words >= _MIN_APPENDED_WORDS:
                    return i
    return None


def clean(text: str, title: str = "") -> Cleaned:
    """Drop page furniture and split off appended articles.

    Lines that repeat the article's ``title`` are dropped too: a headline is not the story's text,
    and outlets give their copies new ones.

    >>> page = ("الرئيسية\\nأخبار\\nرياضة\\nاقتصاد\\nنص الخبر الأول هنا\\nاقرأ أيضاً\\nعنوان خبر آخر\\n"
    ...         "بقية الخبر\\nكلمات دلالية: أ ب")
    >>> clean(page).main
    'نص الخبر الأول هنا\\nبقية الخبر'
    """
    lines = _lines(text)
    embedded: list[str] = []
    at = _appended_at(lines)
    if at is not None:
        # Each appended article in turn (a page can carry more than one).
        rest = lines[at + 1 :]
        lines = lines[:at]
        while rest:
            nxt = _appended_at(["", *rest])
            segment, rest = (rest, []) if nxt is None else (rest[: nxt - 1], rest[nxt:])
            body = _clean_lines(segment)[0]
            if body.strip():
                embedded.append(body)
    main, dropped, source_lines = _clean_lines(lines, normalize(title) if title.strip() else "")
    return Cleaned(main, tuple(embedded), tuple(dropped), tuple(source_lines))


def _is_date_stamp(folded: str) -> bool:
    words = folded.split()
    return bool(words) and all(w.isdigit() or w in _DATE_WORDS for w in words) and any(w.isdigit() for w in words)


def _clean_lines(lines: list[str], title: str = "") -> tuple[str, list[str], list[str]]:
    kept: list[str] = []
    dropped: list[str] = []
    sourced: list[tuple[int, str]] = []  # credit lines, with where they stood among the kept
    skip_next_headline = False
    short_run: list[str] = []

    def flush_run() -> None:
        if len(short_run) >= _MENU_RUN:
            dropped.extend(short_run)
        else:
            kept.extend(short_run)
        short_run.clear()

    # Lines about as long as the headline (none without one): within a third and 4 characters.
    shortest, longest = (len(title) - len(title) // 3 - 4, len(title) + len(title) // 3 + 4) if title else (1, 0)
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        words = _words(line)
        # Set phrases are a few words long: only short lines are folded to be looked up (and
        # lines about as long as the headline, to compare with it).
        headline_sized = shortest <= len(line) <= longest
        folded = normalize(line) if words <= 5 or headline_sized else ""
        if headline_sized and folded == title:
            dropped.append(line)
            continue
        if folded in _END_MARKERS:
            flush_run()
            dropped.append(line)
            break
        if skip_next_headline:
            skip_next_headline = False
            if words <= 20:
                dropped.append(line)
                continue
        if folded in _READ_ALSO:
            skip_next_headline = True  # an in-body link block: the marker, then one linked headline
            dropped.append(line)
            continue
        if _SOURCE.match(line):
            flush_run()
            dropped.append(line)
            sourced.append((len(kept), line))
            continue
        if (
            folded in _FURNITURE
            or (words <= 6 and _is_date_stamp(folded))
            or _FURNITURE_PATTERNS.match(line)
            # A tweet's residue holds "twitter" or "(@": looking for one character first is
            # several times faster (CPython widens a Latin needle to search Arabic text).
            or (("w" in line or "@" in line) and _TWEET.search(line))
            or (words <= 8 and _BULLET.match(raw))
        ):
            flush_run()
            dropped.append(line)
            continue
        if words <= 5 and len(folded.split()) <= 2:
            short_run.append(line)
            continue
        if short_run:
            flush_run()
        kept.append(line)
    flush_run()
    source_lines = list(kept)
    for at, line in reversed(sourced):
        source_lines.insert(at, line)
    return "\n".join(kept), dropped, source_lines
