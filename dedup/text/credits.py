"""Who an article credits, read where outlets put credits, never from bare words in the body.

Three positions are read (see :func:`detect_credits`):

* the **byline** field: "الرياض - واس", "(أ ف ب)", "سبق- وكالات:";
* a **dateline** opening one of the first lines: "موسكو- وكالات – صرح ...", "واشنطن (رويترز) -";
* a **source line** among the last lines: "المصدر: الجزيرة", "المصدر | الأناضول", "فرانس24/ أ ف ب",
  or a closing "(واس)".

A part of a dateline or credit line counts only when it *is* a registry name, so a reporter's
name or a city never matches by accident; names that are also ordinary words or places (بنا
"with us", قنا the city Qena, الأناضول the region, سبا Sheba ...) count only where the position
leaves no doubt: inside parentheses, after a city in a dateline, or on a source line. A mention
in the running text ("ونقلت وكالة تاس ...") is a citation, never a credit.

A page can carry a chain: an Anadolu story republished by الخليج الجديد ends with
"المصدر | الأناضول" then "المصدر: الخليج الجديد". The credits are returned original first.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from dedup.text.normalize import normalize


@dataclass(frozen=True, slots=True)
class Agency:
    """A wire agency: its key, name, the names it is credited under, its sites and feed outlets.

    ``ambiguous`` names are also ordinary words or places; they need a clear credit position.
    """

    key: str
    name: str
    aliases: tuple[str, ...]
    ambiguous: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Credit:
    """One credit: the agency key (or ``generic`` for "وكالات", or ``""`` for a source that is
    not a wire agency, e.g. another outlet), the name as written, where it was read, and the
    text it was read from."""

    agency: str
    name: str
    where: str
    text: str

    @property
    def label(self) -> str:
        """The agency key, or the source's name when it is not an agency."""
        return self.agency or self.name

    def __reduce__(self) -> tuple[type[Credit], tuple[str, str, str, str]]:
        # Sent back from the workers with every sketch: a slotted dataclass's own pickling
        # looks its fields up for each object, several times slower.
        return Credit, (self.agency, self.name, self.where, self.text)


AGENCIES: tuple[Agency, ...] = (
    Agency("spa", "Saudi Press Agency", ("واس", "وكاله الانباء السعوديه", "spa"), sites=("spa.gov.sa",),
           outlets=("was", "spa")),
    Agency("anadolu", "Anadolu Agency", ("وكاله الاناضول", "anadolu", "aa"), ambiguous=("الاناضول",),
           sites=("aa.com.tr",), outlets=("anadolu", "aa")),
    Agency("rt", "RT", ("rt", "ار تي", "روسيا اليوم", "rt عربي"), sites=("rt.com", "arabic.rt.com"), outlets=("rt",)),
    Agency("sputnik", "Sputnik", ("سبوتنيك", "sputnik"), sites=("sputniknews.com", "sputnikarabic.ae"),
           outlets=("sputnik",)),
    Agency("tass", "TASS", ("تاس", "tass"), sites=("tass.com", "tass.ru"), outlets=("tass",)),
    Agency("afp", "Agence France-Presse", ("ا ف ب", "اف ب", "فرانس برس", "وكاله فرانس برس", "afp"),
           sites=("afp.com",), outlets=("afp",)),
    Agency("reuters", "Reuters", ("رويترز", "reuters"), sites=("reuters.com",), outlets=("reuters",)),
    Agency("ap", "Associated Press", ("اسوشيتد برس", "اسوشيتدبرس", "ا ب", "ap"), sites=("apnews.com",),
           outlets=("ap",)),
    Agency("dpa", "Deutsche Presse-Agentur", ("د ب ا", "dpa"), ambiguous=("الالمانيه",), sites=("dpa.com",),
           outlets=("dpa",)),
    Agency("xinhua", "Xinhua", ("شينخوا", "xinhua"), sites=("xinhuanet.com", "news.cn"), outlets=("xinhua",)),
    Agency("efe", "EFE", ("efe",), ambiguous=("افي",), sites=("efe.com",), outlets=("efe",)),
    Agency("wam", "Emirates News Agency", ("وام", "wam"), sites=("wam.ae",), outlets=("wam",)),
    Agency("qna", "Qatar News Agency", ("qna", "وكاله الانباء القطريه"), ambiguous=("قنا",), sites=("qna.org.qa",),
           outlets=("qna",)),
    Agency("kuna", "Kuwait News Agency", ("كونا", "kuna"), sites=("kuna.net.kw",), outlets=("kuna",)),
    Agency("bna", "Bahrain News Agency", ("bna", "وكاله انباء البحرين"), ambiguous=("بنا",), sites=("bna.bh",),
           outlets=("bna",)),
    Agency("ona", "Oman News Agency", ("ona", "وكاله الانباء العمانيه"), ambiguous=("العمانيه",),
           sites=("omannews.gov.om",), outlets=("ona",)),
    Agency("mena", "Middle East News Agency", ("ا ش ا", "mena"), sites=("mena.org.eg",), outlets=("mena",)),
    Agency("sana", "Syrian Arab News Agency", ("سانا", "sana"), sites=("sana.sy",), outlets=("sana",)),
    Agency("petra", "Petra", ("بترا", "petra"), sites=("petra.gov.jo",), outlets=("petra",)),
    Agency("nna", "National News Agency (Lebanon)", ("الوكاله الوطنيه للاعلام", "nna"), sites=("nna-leb.gov.lb",),
           outlets=("nna",)),
    Agency("ina", "Iraqi News Agency", ("واع", "ina"), sites=("ina.iq",), outlets=("ina",)),
    Agency("wafa", "WAFA", ("wafa",), ambiguous=("وفا",), sites=("wafa.ps",), outlets=("wafa",)),
    Agency("suna", "Sudan News Agency", ("سونا", "suna"), sites=("suna-sd.net",), outlets=("suna",)),
    Agency("saba", "Saba", ("saba", "وكاله سبا"), ambiguous=("سبا",), sites=("saba.ye",), outlets=("saba",)),
    Agency("map", "Maghreb Arabe Presse", ("لاماب", "map"), sites=("mapexpress.ma", "mapnews.ma"), outlets=("map",)),
    Agency("aps", "Algérie Presse Service", ("واج", "aps"), sites=("aps.dz",), outlets=("aps",)),
    Agency("tap", "Tunis Afrique Presse", ("tap",), ambiguous=("وات",), sites=("tap.info.tn",), outlets=("tap",)),
    Agency("irna", "IRNA", ("ارنا", "irna"), sites=("irna.ir",), outlets=("irna",)),
    Agency("mna", "Mehr News Agency", ("مهر", "mehr"), sites=("mehrnews.com",), outlets=("mehr",)),
    Agency("lana", "Libyan News Agency", ("وال", "lana"), sites=("lana.gov.ly",), outlets=("lana",)),
)

GENERIC = ("وكالات", "وكالات الانباء", "agencies")

_CLEAR: dict[str, str] = {}
_AMBIGUOUS: dict[str, str] = {}
for _agency in AGENCIES:
    for _alias in _agency.aliases:
        _CLEAR[normalize(_alias)] = _agency.key
    for _alias in _agency.ambiguous:
        _AMBIGUOUS[normalize(_alias)] = _agency.key
_GENERIC = frozenset(normalize(g) for g in GENERIC)
AGENCY_KEYS = frozenset(a.key for a in AGENCIES)
_BY_OUTLET = {o: a.key for a in AGENCIES for o in a.outlets}
_BY_SITE = {s: a.key for a in AGENCIES for s in a.sites}

# Separators inside datelines and credit lines.
_PARTS = re.compile(r"\s*(?:[-–—:/|،,]|\s\s)\s*")
_PAREN = re.compile(r"[(\[](?P<inner>[^()\[\]]{1,30})[)\]]")
_SOURCE_LINE = re.compile(
    r"^\s*(?:المصدر(?: الأصلي| الاصلي)?|مصدر الخبر|source)\s*(?:[:|/\-–—]\s*)+(?P<name>.+?)\s*$", re.IGNORECASE
)
_DATELINE_END = re.compile(r"\s[-–—]\s|[-–—]\s|:\s")
_MAX_NAME_WORDS = 4


def agency_of_outlet(outlet: str, url: str = "") -> str | None:
    """The agency an outlet or url belongs to, if it is one in the registry (its own item).

    >>> agency_of_outlet("was"), agency_of_outlet("", "https://www.aa.com.tr/ar/x"), agency_of_outlet("okaz")
    ('spa', 'anadolu', None)
    """
    key = _BY_OUTLET.get(outlet.strip().lower())
    if key or not url:
        return key
    # The host ends at the first "/" after "//": the part before it has the same host, and
    # repeats across an outlet's urls (so its answer is memoized).
    start = url.find("//")
    end = url.find("/", start + 2) if start >= 0 else -1
    return _agency_of_site(url if end < 0 else url[:end])


@functools.lru_cache(maxsize=1 << 12)
def _agency_of_site(url: str) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    while host:
        if host in _BY_SITE:
            return _BY_SITE[host]
        host = host.partition(".")[2]
    return None


def _name(part: str, *, clear_position: bool) -> str | None:
    """The agency key ("generic" for وكالات) a credit part names, if it is one."""
    if part in _CLEAR:
        return _CLEAR[part]
    if part in _GENERIC:
        return "generic"
    if clear_position and part in _AMBIGUOUS:
        return _AMBIGUOUS[part]
    return None


def _credit_parts(text: str) -> list[str]:
    return [p for p in (normalize(x) for x in _PARTS.split(text)) if p]


def detect_byline_credit(byline: str) -> Credit | None:
    """The agency credited by a byline such as "الرياض - واس" or "(أ ف ب)", if any.

    >>> detect_byline_credit("الرياض - واس").agency
    'spa'
    >>> detect_byline_credit("لندن: رنيم حنوش") is None
    True
    """
    found = _byline_credits(byline)
    return found[0] if found else None


@functools.lru_cache(maxsize=1 << 14)
def _byline_credits(byline: str) -> tuple[Credit, ...]:
    """The credits of a byline. Memoized: an outlet signs thousands of articles with the same
    few bylines ("الرياض - واس"), and a Credit cannot be changed."""
    return tuple(_from_dateline(byline, "byline", whole=True))


def _from_dateline(line: str, where: str, *, whole: bool = False) -> list[Credit]:
    """Credits in a dateline: the head of ``line`` before the text starts (all of it if ``whole``).

    "CITY - AGENCY", "AGENCY - CITY", "CITY (AGENCY)", "(AGENCY)": every part must be short, and
    an ambiguous name counts in parentheses or after another part (a city), never first.
    """
    text = html.unescape(line).strip()
    if not whole:
        ends = [m.start() for m in _DATELINE_END.finditer(text[:48])]
        # "واشنطن (رويترز) -": a bracketed credit opens the line or follows a city, not a sentence.
        parens = [m.end() for m in _PAREN.finditer(text[:48]) if len(text[: m.start()].split()) <= 2]
        if not ends and not parens:
            return []
        text = text[: max(ends + parens)]
    names = _dateline_names(text)
    return [Credit(key, name, where, line.strip()) for key, name in names] if names else []


@functools.lru_cache(maxsize=1 << 16)
def _dateline_names(head: str) -> tuple[tuple[str, str], ...]:
    """(agency key, name as written) of the credits in a dateline head, agencies first.

    Memoized: outlets open thousands of articles with the same few datelines ("الرياض - واس").
    """
    found: list[tuple[str, str]] = []
    for m in _PAREN.finditer(head):
        for part in _credit_parts(m.group("inner")):
            key = _name(part, clear_position=True)
            if key:
                found.append((key, m.group("inner").strip()))
    rest = _PAREN.sub("  ", head)
    if not any(len(p.split()) > _MAX_NAME_WORDS for p in _PARTS.split(rest)):  # else a sentence
        for i, part in enumerate(_credit_parts(rest)):
            key = _name(part, clear_position=i > 0)
            if key:
                found.append((key, part))
    ordered = _agencies_first([Credit(key, name, "", "") for key, name in found])
    return tuple((c.agency, c.name) for c in ordered)


def _from_source_line(line: str) -> list[Credit]:
    line = html.unescape(line)
    m = _SOURCE_LINE.match(line)
    if m is not None:  # "المصدر: الجزيرة", "المصدر | الأناضول": any short name is a source
        credits = []
        for raw in re.split(r"\s*[/|،,]\s*|\s+[-–—]\s+", m.group("name")):
            part = normalize(raw)
            if part and len(part.split()) <= _MAX_NAME_WORDS:
                key = _name(part, clear_position=True)
                credits.append(Credit(key or "", part if key else raw.strip(), "source-line", line.strip()))
        return _agencies_first(credits)
    # A line that is only credits: "فرانس24/ أ ف ب", "(رويترز)", "وكالات".
    bracketed = bool(_PAREN.fullmatch(line.strip()))
    unbracketed = _PAREN.sub(lambda p: " / " + p.group("inner") + " / ", line)
    raw = [p for p in _PARTS.split(unbracketed) if p.strip()]
    if not raw or len(raw) > 3 or any(len(p.split()) > _MAX_NAME_WORDS for p in raw):
        return []
    parts = _credit_parts(unbracketed)
    if not parts:
        return []
    clear = bracketed or len(parts) > 1  # a bare ambiguous word alone is not a credit
    keys = [_name(p, clear_position=clear) for p in parts]
    if not any(keys):
        return []
    return _agencies_first([Credit(k or "", p, "source-line", line.strip()) for k, p in zip(keys, parts, strict=True)])


def _agencies_first(credits: list[Credit]) -> list[Credit]:
    agencies = [c for c in credits if c.agency and c.agency != "generic"]
    generic = [c for c in credits if c.agency == "generic"]
    others = [c for c in credits if not c.agency]
    return agencies + generic + others


_CLOSING_PAREN = re.compile(r"[(\[](?P<inner>[^()\[\]]{1,30})[)\]][.\s]*$")
# What may follow the closing bracket: dots and white space (``[.\s]``: ``\s`` is what
# str.isspace says, and there is none outside the first 65,536 code points).
_AFTER_CLOSING = "." + "".join(c for c in map(chr, range(0x10000)) if c.isspace())


def _may_close(line: str) -> bool:
    """Whether ``line`` ends as a closing credit does (a bracket, then dots and white space): a
    quick look before the search, which tries every bracket of a long line."""
    return line.rstrip(_AFTER_CLOSING)[-1:] in (")", "]")


def detect_credits(text: str, byline: str = "") -> tuple[Credit, ...]:
    """Every credit of an article, original source first, with where each was found.

    ``text`` is the article's own text (an appended article already split off).

    >>> [(c.label, c.where) for c in detect_credits("موسكو- وكالات – صرح الوزير اليوم أن المحادثات ستبدأ")]
    [('generic', 'dateline')]
    >>> [c.label for c in detect_credits("نص الخبر\\nالمصدر | الأناضول\\nالمصدر: الخليج الجديد")]
    ['anadolu', 'الخليج الجديد']
    >>> detect_credits("ونقلت وكالة تاس عن المتحدث قوله إن بلاده لا ترحب بالتصعيد")
    ()
    """
    return credits_in_lines([line for line in text.splitlines() if line.strip()], byline)


def credits_in_lines(lines: Sequence[str], byline: str = "") -> tuple[Credit, ...]:
    """:func:`detect_credits` of a text given as its lines that are not blank, such as
    :attr:`dedup.text.clean.Cleaned.source_lines` (not joined to be split again)."""
    found: list[Credit] = []
    if byline.strip():
        found += _byline_credits(byline)
    # The dateline opens the first paragraph: look at the lines up to the first long one
    # (headlines and date stamps can come before it).
    for line in lines[:12]:
        dateline = _from_dateline(line, "dateline")
        if dateline or len(line) > 120 or len(line.split()) >= 12:
            found += dateline
            break
    tail = lines[-4:] if len(lines) > 1 else []
    for line in tail:
        if len(line) <= 120 and len(line.split()) <= 12:
            found += _from_source_line(line)
    if lines:
        closing = _CLOSING_PAREN.search(lines[-1]) if _may_close(lines[-1]) else None
        if closing and (len(lines[-1]) > 40 or len(lines[-1].split()) > 3):
            found += [Credit(k, closing.group("inner").strip(), "closing", lines[-1].strip()[-60:])
                      for k in [_name(normalize(closing.group("inner")), clear_position=True)] if k]
    return _chain(found)


def _chain(credits: list[Credit]) -> tuple[Credit, ...]:
    """Original source first, each source once: agencies, then generic credits, then outlets."""
    seen: set[str] = set()
    ordered: list[Credit] = []
    for credit in _agencies_first(credits):
        label = credit.label if credit.agency else normalize(credit.name)
        if label not in seen:
            seen.add(label)
            ordered.append(credit)
    if any(c.agency and c.agency != "generic" for c in ordered):
        ordered = [c for c in ordered if c.agency != "generic"]  # "وكالات" beside a named agency adds nothing
    return tuple(ordered)
