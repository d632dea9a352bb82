"""feeds.yaml: the feeds the daemon polls, validated with errors that name the file, line and field.

```yaml
defaults:            # optional; every key can be set per feed too
  interval: 600      # seconds between polls of one feed
  timeout: 30        # overall deadline of one fetch, seconds
  max_bytes: 5000000 # largest response body accepted (after decompression)
  per_host: 2        # fetches in flight to one host at most
feeds:
  - name: spa                       # unique; used in logs, state and `dedup status`
    outlet: spa                     # the outlet name articles carry
    url: https://www.spa.gov.sa/rss
    agency: true                    # a wire agency: its items are the canonical copies
    full_page: false                # fetch each item's page when the feed carries summaries only
    timezone: Asia/Riyadh           # for dates written without a zone
    enabled: true
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from dedup._errors import DedupError


class ConfigError(DedupError):
    """feeds.yaml is not valid; the message names the file, line and field."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    interval: float = 600.0
    timeout: float = 30.0
    max_bytes: int = 5_000_000
    per_host: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Feed:
    name: str
    outlet: str
    url: str
    agency: bool = False
    full_page: bool = False
    timezone: str | None = None
    enabled: bool = True
    limits: Limits = field(default_factory=Limits)

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    path: str
    feeds: tuple[Feed, ...]

    @property
    def enabled(self) -> tuple[Feed, ...]:
        return tuple(f for f in self.feeds if f.enabled)


_LIMIT_TYPES: dict[str, type] = {"interval": float, "timeout": float, "max_bytes": int, "per_host": int}
_FEED_KEYS = {"name", "outlet", "url", "agency", "full_page", "timezone", "enabled", *_LIMIT_TYPES}


def load_feeds(path: str | Path) -> FeedsConfig:
    """Read and check feeds.yaml. Every problem is reported with its line and field."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, None, "no such file; pass --feeds PATH or create feeds.yaml") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, None, f"not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(source, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(source, 1, "expected a mapping with a 'feeds' list")
    top = _mapping(root)
    unknown = set(top) - {"defaults", "feeds"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(source, top[key][0].start_mark.line + 1,
                          f"unknown top-level key {key!r} (expected defaults, feeds)")
    defaults = Limits()
    if "defaults" in top:
        node = top["defaults"][1]
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(source, node.start_mark.line + 1, "'defaults' must be a mapping")
        defaults = Limits(**_limits(source, _mapping(node), {}))
    if "feeds" not in top:
        raise ConfigError(source, 1, "no 'feeds' list")
    seq = top["feeds"][1]
    if not isinstance(seq, yaml.SequenceNode):
        raise ConfigError(source, seq.start_mark.line + 1, "'feeds' must be a list")
    feeds: list[Feed] = []
    names: dict[str, int] = {}
    for item in seq.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise ConfigError(source, line, "each feed must be a mapping with name, outlet and url")
        fields = _mapping(item)
        for key, (key_node, _) in fields.items():
            if key not in _FEED_KEYS:
                raise ConfigError(source, key_node.start_mark.line + 1,
                                  f"unknown field {key!r} (fields: {', '.join(sorted(_FEED_KEYS))})")
        values = {k: _scalar(source, v) for k, (_, v) in fields.items()}
        for required in ("name", "url"):
            if not values.get(required):
                raise ConfigError(source, line, f"feed without {required!r}")
        name = str(values["name"])
        if name in names:
            raise ConfigError(source, line, f"feed name {name!r} is also used on line {names[name]}")
        names[name] = line
        url = str(values["url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(source, fields["url"][1].start_mark.line + 1,
                              f"field 'url': {url!r} is not an http(s) URL")
        flags = {}
        for flag in ("agency", "full_page", "enabled"):
            if flag in values:
                if not isinstance(values[flag], bool):
                    raise ConfigError(source, fields[flag][1].start_mark.line + 1,
                                      f"field {flag!r} must be true or false, got {values[flag]!r}")
                flags[flag] = values[flag]
        zone = values.get("timezone")
        if zone is not None:
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(source, fields["timezone"][1].start_mark.line + 1,
                                  f"field 'timezone': unknown time zone {zone!r} (e.g. Asia/Riyadh)") from None
        limits = Limits(**_limits(source, fields, {k: getattr(defaults, k) for k in _LIMIT_TYPES}))
        feeds.append(Feed(name=name, outlet=str(values.get("outlet") or name), url=url,
                          timezone=str(zone) if zone is not None else None, limits=limits, **flags))
    return FeedsConfig(str(source), tuple(feeds))


def _mapping(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    return {str(k.value): (k, v) for k, v in node.value}


def _scalar(source: Path, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(source, node.start_mark.line + 1, "expected a single value")
    return yaml.safe_load(yaml.serialize(node))


def _limits(source: Path, fields: dict[str, tuple[yaml.Node, yaml.Node]], base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, kind in _LIMIT_TYPES.items():
        if key not in fields:
            continue
        node = fields[key][1]
        value = _scalar(source, node)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(source, node.start_mark.line + 1,
                              f"field {key!r} must be a positive number, got {value!r}")
        out[key] = kind(value)
    return out
