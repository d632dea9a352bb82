"""Feeds from bytes to items: RSS 2.0 and Atom (feedparser), JSON Feed (here), with the charset
found even when the feed mislabels it, dates read in the feed's zone, and a stable item key.

feedparser is always handed bytes (never a URL: it would fetch). It reports a windows-1256 feed
labelled UTF-8 only through ``bozo`` and returns mojibake, so the charset is checked here first;
it reads no JSON Feed, and returns entries from a truncated feed, so what it hands back is checked.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import re
import xml.sax
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import feedparser
from charset_normalizer import from_bytes

from dedup._errors import DedupError


class ParseError(DedupError):
    """A feed body that cannot be read as a feed."""


@dataclass(frozen=True, slots=True)
class FeedItem:
    key: str  # the item's identity: its normalized URL, else its GUID, else a digest of its content
    guid: str
    url: str
    title: str
    text: str
    summary_only: bool  # the feed carries a summary, not the article
    published_raw: str
    published: str  # "YYYY-MM-DD HH:MM:SS" UTC; the first-seen time when the feed gives none

    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.title}\x00{self.text}".encode()).hexdigest()[:32]


_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|dclid|mc_cid|mc_eid|igshid|yclid|_ga|ref|ref_src|at_\w+|cmpid)$", re.I)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding=[\"']([A-Za-z0-9._-]+)[\"']", re.I)
_SUMMARY_WORDS = 80
_CLOSED = re.compile(r"</(?:rss|feed|rdf:RDF)>\s*$", re.I)


def normalize_url(url: str) -> str:
    """A URL with the differences that do not change the page removed: http/https, host case,
    tracking parameters, parameter order, fragment, a trailing slash.

    >>> normalize_url("http://WWW.Example.com/a/b/?utm_source=x&id=3&fbclid=y#top")
    'https://www.example.com/a/b?id=3'
    """
    parts = urlsplit(url.strip())
    if not parts.netloc:
        return url.strip()
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k))
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    scheme = "https" if parts.scheme in ("http", "https") else parts.scheme
    return urlunsplit((scheme, parts.netloc.lower(), path, urlencode(query), ""))


def decode_feed(body: bytes, content_type: str = "") -> str:
    """The feed's text, in the charset it really uses (declared, else detected)."""
    declared = _declared_charset(body, content_type)
    for candidate in [c for c in (declared, "utf-8") if c]:
        try:
            return body.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    guess = from_bytes(body).best()
    if guess is None:
        raise ParseError("cannot tell the feed's character set")
    return str(guess)


def _declared_charset(body: bytes, content_type: str) -> str | None:
    m = re.search(r"charset=([\w.-]+)", content_type, re.I)
    if m:
        return m.group(1).lower()
    m2 = _XML_DECL.match(body[:200])
    return m2.group(1).decode("ascii").lower() if m2 else None


def parse_feed(body: bytes, content_type: str = "", *, timezone: str | None = None,
               first_seen: dt.datetime | None = None) -> list[FeedItem]:
    """The items of a feed body (RSS 2.0, Atom or JSON Feed)."""
    seen = (first_seen or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    zone = ZoneInfo(timezone) if timezone else dt.UTC
    if not body.strip():
        raise ParseError("empty response body")
    if _ENTITY_DECL.search(body[:65536]):
        raise ParseError("the feed declares XML entities; refused (a feed never needs them, an entity bomb does)")
    text = decode_feed(body, content_type)
    if "json" in content_type.lower() or text.lstrip().startswith("{"):
        return _json_feed(text, zone, seen)
    # Hand feedparser UTF-8 with a matching declaration, whatever the bytes were.
    utf8 = re.sub(r"^\s*<\?xml[^>]*\?>", '<?xml version="1.0" encoding="utf-8"?>', text, count=1).encode("utf-8")
    parsed = feedparser.parse(utf8, response_headers={"content-type": "application/xml; charset=utf-8"})
    problem = parsed.get("bozo_exception") if parsed.bozo else None
    if problem is not None and not parsed.entries:
        raise ParseError(f"malformed feed: {problem}")
    # feedparser still hands back entries from broken XML. Tolerate what real feeds get wrong
    # and it repairs (an undefined &nbsp;), not a document that stops halfway.
    if isinstance(problem, xml.sax.SAXParseException) and not _CLOSED.search(text[-400:]):
        raise ParseError(f"malformed feed: the XML breaks off (line {problem.getLineNumber()}: {problem.getMessage()})")
    if not parsed.entries and not parsed.get("version"):
        raise ParseError("not an RSS, Atom or JSON feed")
    return [item for entry in parsed.entries if (item := _rss_item(entry, zone, seen)) is not None]


def _rss_item(entry: Any, zone: dt.tzinfo, seen: dt.datetime) -> FeedItem | None:
    link = str(entry.get("link") or "")
    guid = str(entry.get("id") or entry.get("guid") or "")
    content = entry.get("content") or []
    html = content[0].get("value", "") if content else ""
    summary = str(entry.get("summary") or "")
    text = html_to_text(html or summary)
    raw = str(entry.get("published") or entry.get("updated") or entry.get("created") or "")
    return _item(link, guid, str(entry.get("title") or ""), text, summary_only=not html, raw=raw, zone=zone,
                 seen=seen)


def _json_feed(text: str, zone: dt.tzinfo, seen: dt.datetime) -> list[FeedItem]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON Feed: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise ParseError("JSON, but not a JSON Feed (no jsonfeed.org version)")
    items = []
    for entry in doc.get("items") or []:
        if not isinstance(entry, dict):
            continue
        html = str(entry.get("content_html") or "")
        plain = str(entry.get("content_text") or "")
        body = plain or html_to_text(html) or html_to_text(str(entry.get("summary") or ""))
        item = _item(str(entry.get("url") or ""), str(entry.get("id") or ""), str(entry.get("title") or ""), body,
                     summary_only=not (plain or html), raw=str(entry.get("date_published") or ""), zone=zone,
                     seen=seen)
        if item is not None:
            items.append(item)
    return items


def _item(link: str, guid: str, title: str, text: str, *, summary_only: bool, raw: str, zone: dt.tzinfo,
          seen: dt.datetime) -> FeedItem | None:
    if not (link or guid or title.strip() or text.strip()):
        return None  # an empty entry: nothing to keep
    # Identity: the page, else the feed's id, else (neither given) the content itself.
    content = hashlib.sha256(f"{title.strip()}\x00{text}".encode()).hexdigest()[:24]
    key = normalize_url(link) if link else (f"guid:{guid}" if guid else f"content:{content}")
    published = _published(raw, zone, seen)
    summary_only = summary_only and len(text.split()) < _SUMMARY_WORDS
    return FeedItem(key, guid, link, title.strip(), text, summary_only, raw, published)


def _published(raw: str, zone: dt.tzinfo, seen: dt.datetime) -> str:
    """The publication time in UTC; a date with no zone is read in the feed's zone; the first-seen
    time when there is no date, it cannot be read, or it lies in the future."""
    when: dt.datetime | None = None
    if raw.strip():
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            try:
                when = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            except ValueError:
                when = None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    if when is None or when.astimezone(dt.UTC) > seen + dt.timedelta(hours=1):
        when = seen
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


_BLOCK = re.compile(r"(?i)<\s*(br|/p|/div|/li|/h[1-6]|/blockquote|/tr)\b[^>]*>")


def html_to_text(html: str) -> str:
    """Text of an HTML fragment, one line per block.

    >>> html_to_text("<p>سطر أول</p><p>سطر <b>ثان</b> &amp; أخير</p>")
    'سطر أول\\nسطر ثان & أخير'
    """
    if "<" not in html and "&" not in html:
        return html.strip()
    import lxml.html

    marked = _BLOCK.sub(lambda m: m.group(0) + "\n", html)
    try:
        fragment = lxml.html.fragment_fromstring(marked, create_parent="div")
    except Exception:  # lxml raises several types on broken markup
        return re.sub(r"<[^>]+>", " ", html).strip()
    for bad in fragment.xpath("//script|//style"):
        bad.drop_tree()
    lines = (" ".join(line.split()) for line in fragment.text_content().splitlines())
    return "\n".join(line for line in lines if line)
