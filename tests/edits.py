"""The edits outlets make to an agency story, as pure functions for tests."""

from __future__ import annotations

HOUSE_SPELLINGS = {"الأمريكي": "الأميركي", "ترامب": "ترمب", "جوجل": "غوغل", "الروسي": "الروسى"}


def new_headline(text: str) -> str:
    return "عاجل | تطورات جديدة في خبر اليوم\n\n" + text


def boilerplate(text: str) -> str:
    return "الرئيسية > أخبار > محليات\nشارك الخبر\n" + text + "\nجميع الحقوق محفوظة © 2025\nتابعونا على تويتر"


def first_half(text: str) -> str:
    words = text.split()
    return " ".join(words[: len(words) // 2])


def house_spelling(text: str) -> str:
    for src, dst in HOUSE_SPELLINGS.items():
        text = text.replace(src, dst)
    return text.replace("أ", "ا").replace("ة ", "ه ")


def appended(text: str, other: str) -> str:
    return text + "\n\nإقرأ أيضاً:\n" + other


def credited(text: str, dateline: str = "الرياض - واس") -> str:
    return dateline + "\n" + text
