"""Wire-agency credits read from the byline field.

A credit is only read where outlets put one (the byline); bare tokens in the body are not credits
("نقلت وكالة ..." is a citation). The registry lists agencies by the Arabic and Latin names and
abbreviations they are credited under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dedup.text.normalize import normalize


@dataclass(frozen=True, slots=True)
class Agency:
    key: str
    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Credit:
    """A credit found for an article: the agency key (or ``generic``) and where it was found."""

    agency: str
    where: str
    text: str


AGENCIES: tuple[Agency, ...] = (
    Agency("spa", "Saudi Press Agency", ("واس", "وكاله الانباء السعوديه", "spa")),
    Agency("anadolu", "Anadolu Agency", ("الاناضول", "وكاله الاناضول", "anadolu", "aa")),
    Agency("rt", "RT", ("rt", "روسيا اليوم", "ار تي")),
    Agency("sputnik", "Sputnik", ("سبوتنيك", "sputnik")),
    Agency("tass", "TASS", ("تاس", "tass")),
    Agency("afp", "AFP", ("ا ف ب", "فرانس برس", "afp")),
    Agency("reuters", "Reuters", ("رويترز", "reuters")),
    Agency("ap", "Associated Press", ("اسوشيتد برس", "ا ب", "ap")),
    Agency("dpa", "dpa", ("د ب ا", "الالمانيه", "dpa")),
    Agency("xinhua", "Xinhua", ("شينخوا", "xinhua")),
    Agency("efe", "EFE", ("افي", "efe")),
    Agency("wam", "WAM", ("وام", "wam")),
    Agency("qna", "QNA", ("قنا", "qna")),
    Agency("kuna", "KUNA", ("كونا", "kuna")),
    Agency("bna", "BNA", ("بنا", "bna")),
    Agency("ona", "ONA", ("العمانيه", "ona")),
    Agency("mena", "MENA", ("ا ش ا", "mena")),
    Agency("sana", "SANA", ("سانا", "sana")),
    Agency("petra", "Petra", ("بترا", "petra")),
    Agency("nna", "NNA", ("الوكاله الوطنيه للاعلام", "nna")),
    Agency("ina", "INA", ("واع", "ina")),
    Agency("wafa", "WAFA", ("وفا", "wafa")),
    Agency("suna", "SUNA", ("سونا", "suna")),
    Agency("saba", "Saba", ("سبا", "saba")),
    Agency("map", "MAP", ("لاماب", "map")),
    Agency("aps", "APS", ("واج", "aps")),
    Agency("tap", "TAP", ("وات", "tap")),
    Agency("irna", "IRNA", ("ارنا", "irna")),
)

GENERIC = ("وكالات",)

_SPLIT = re.compile(r"\s*[-–—:/|،,]\s*")


def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for agency in AGENCIES:
        for alias in agency.aliases:
            index[normalize(alias)] = agency.key
    return index


_ALIASES = _alias_index()
_GENERIC = frozenset(normalize(g) for g in GENERIC)


def detect_byline_credit(byline: str) -> Credit | None:
    """The agency credited by a byline such as "الرياض - واس" or "(أ ف ب)", if any.

    Only whole byline parts count: a part must *be* an agency name, so a reporter's name or a
    city in the byline never matches by accident.

    >>> detect_byline_credit("الرياض - واس").agency
    'spa'
    >>> detect_byline_credit("لندن: رنيم حنوش") is None
    True
    """
    if not byline.strip():
        return None
    parts = [normalize(p) for p in _SPLIT.split(byline.replace("(", " ").replace(")", " "))]
    for part in parts:
        if part in _ALIASES:
            return Credit(agency=_ALIASES[part], where="byline", text=byline.strip())
    for part in parts:
        if part in _GENERIC:
            return Credit(agency="generic", where="byline", text=byline.strip())
    return None
