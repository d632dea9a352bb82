"""Near-duplicate and syndication detection for Arabic news.

>>> from dedup import Article, Detector
>>> with Detector.in_memory() as d:
...     d.add(Article(id="1", text="نص")).action
'new'
"""

import logging

from dedup._errors import ConfigMismatchError, DedupError, DuplicateIdError, InputError, StateError
from dedup._model import Article, Decision, ProvenanceEntry, Story
from dedup.detector import Detector, DetectorConfig, StoryMatch
from dedup.match import MatchConfig
from dedup.sketch import SketchConfig

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Article",
    "ConfigMismatchError",
    "Decision",
    "DedupError",
    "Detector",
    "DetectorConfig",
    "DuplicateIdError",
    "InputError",
    "MatchConfig",
    "ProvenanceEntry",
    "SketchConfig",
    "StateError",
    "Story",
    "StoryMatch",
]
