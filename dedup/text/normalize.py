"""Arabic orthographic normalization for matching (never for display).

The mapping, applied after Unicode NFKC (which also unfolds presentation forms such as ﻻ → لا):

=====================================  ==========================================  ==============
what                                   code points                                 becomes
=====================================  ==========================================  ==============
Quranic marks, harakat, tanween,       U+0610–U+061A, U+064B–U+065F, U+0670,       removed
shadda, sukun, superscript alef        U+06D6–U+06ED
tatweel (kashida)                      U+0640                                      removed
zero-width and bidi controls           U+200B–U+200F, U+202A–U+202E,               removed
                                       U+2066–U+2069, U+FEFF, U+00AD
alef with hamza above/below, madda,    أ إ آ ٱ (U+0623 U+0625 U+0622 U+0671)        ا
wasla
alef maqsura, Persian/Farsi yeh        ى ی (U+0649 U+06CC)                         ي
Persian keheh                          ک (U+06A9)                                   ك
teh marbuta                            ة (U+0629)                                   ه
hamza on waw / on yeh                  ؤ ئ (U+0624 U+0626)                          و ي
Arabic-Indic and Persian digits        ٠–٩ (U+0660–0669), ۰–۹ (U+06F0–06F9)         0–9
every other character that is not a    incl. ، ؛ ؟ « » “ ” ٪ ٫ ٬ _ and all            space
letter or digit (``str.isalnum``)      punctuation and symbols
Latin letters                          A–Z etc.                                    lower case
white space runs                                                                   one space
=====================================  ==========================================  ==============

ج غ ق ك are deliberately *not* folded into each other: they separate native words, and house
spellings of foreign names (غوغل/جوجل) are few enough that shingles absorb them.

The function is pure and idempotent: ``normalize(normalize(t)) == normalize(t)``.
"""

from __future__ import annotations

import re
import unicodedata

_REMOVED = re.compile(
    "[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640"
    "\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\u00ad]"
)
_WORD = re.compile(r"[^\W_]+")
_OUTSIDE_ARABIC_AND_ASCII = re.compile("[^\x00-\x7f\u0600-\u06ff]")

_FOLDS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ی": "ي",
        "ک": "ك",
        "ة": "ه",
        "ؤ": "و",
        "ئ": "ي",
        **{chr(0x0660 + i): str(i) for i in range(10)},
        **{chr(0x06F0 + i): str(i) for i in range(10)},
    }
)


def _one_pass_table() -> dict[int, str | None]:
    """Every step of the table above, as one ``str.translate`` table, for the characters where
    that is exact: ASCII, Latin-1, the Arabic block and general punctuation, each unchanged by
    NFKC (and not a mark that NFKC composes with the letter before it). Removed characters go
    to nothing, word characters are folded and lower-cased, other characters become a space;
    the new line is kept (it separates tokens)."""
    table: dict[int, str | None] = {}
    composing = {0x0653, 0x0654, 0x0655}  # maddah and hamza above/below compose with alef, waw, yeh
    for cp in [*range(0x100), *range(0x600, 0x700), *range(0x2000, 0x2070), 0xFEFF]:
        ch = chr(cp)
        if cp in composing or unicodedata.normalize("NFKC", ch) != ch:
            continue
        if _REMOVED.match(ch):
            table[cp] = None
        elif ch == "\n":
            table[cp] = ch
        elif _WORD.match(ch):
            folded = ch.translate(_FOLDS).lower()
            if len(folded) == 1 and unicodedata.normalize("NFKC", folded) == folded == folded.lower():
                table[cp] = folded
        else:
            table[cp] = " "
    return table


_ONE_PASS = _one_pass_table()
_NOT_IN_ONE_PASS = re.compile("[^" + "".join(re.escape(chr(cp)) for cp in sorted(_ONE_PASS)) + "]")

# Folding word by word through a bounded memo: str.translate costs ~60 ns a character on
# Arabic text, and news vocabulary repeats. The memo holds values of a pure function, so it
# never changes a result, only the time it takes.
_MEMO_LIMIT = 500_000
_memo: dict[str, str] = {}


def _fold_word(word: str) -> str:
    folded = _memo.get(word)
    if folded is None:
        folded = word.translate(_FOLDS).lower()
        if len(_memo) >= _MEMO_LIMIT:
            _memo.clear()
        _memo[word] = folded
    return folded


def _nfkc(text: str) -> str:
    # Most news text is already NFKC; the quick check costs a fraction of the conversion.
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def raw_words(text: str) -> list[str]:
    """Words of ``text`` before folding: NFKC, marks removed, split at every non-alphanumeric."""
    return _WORD.findall(_REMOVED.sub("", _nfkc(text)))


def fold_word(word: str) -> str:
    """Fold one raw word (letter folds, digits, lower case); memoized."""
    return _fold_word(word)


def _one_pass(text: str) -> list[str]:
    return [_fold_word(w) for w in raw_words(text)]


def normalized_words(text: str) -> list[str]:
    """The words of ``normalize(text)``, without joining them (what shingling needs).

    >>> normalized_words("الرياض - واس: أعلنت")
    ['الرياض', 'واس', 'اعلنت']
    """
    if text.isalnum() and not _REMOVED.search(text) and unicodedata.is_normalized("NFKC", text):
        # One plain word (the usual case for a white-space token): the general path below
        # gives the same, at several times the cost.
        word = _fold_word(text)
        if not _OUTSIDE_ARABIC_AND_ASCII.search(word):
            return [word]
    tokens = _one_pass(text)
    joined = " ".join(tokens)
    # Outside Arabic and ASCII, NFKC and lower() can expose characters the other maps
    # (e.g. U+0130); a second pass there keeps the function idempotent on every input.
    if _OUTSIDE_ARABIC_AND_ASCII.search(joined):
        tokens = _one_pass(joined)
    return tokens


def normalize(text: str) -> str:
    """Normalize Arabic (and mixed) text for matching.

    >>> normalize("قالَ الرئيسُ الأمريكيّ: «نعم»، ١٢٣")
    'قال الرييس الامريكي نعم 123'
    """
    if not _NOT_IN_ONE_PASS.search(text):
        # Every character is one the one-pass table covers exactly: it does every step at once
        # (what the word hashes of dedup.text.wordhash rely on too), at about half the cost.
        return " ".join(text.translate(_ONE_PASS).split())
    return " ".join(normalized_words(text))
