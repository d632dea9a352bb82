"""The exception tree of the detector.

    DedupError
    ├── ConfigMismatchError   stored signatures were made with another text/shingle/MinHash configuration
    ├── DuplicateIdError      an id was added again with different content
    ├── InputError            a row of an input file cannot be read (carries file and line)
    └── StateError            the state folder cannot be opened or is damaged
"""

from __future__ import annotations

import functools


class DedupError(Exception):
    """Base class of every error the detector raises on purpose."""


class ConfigMismatchError(DedupError):
    """The state was written with another text/shingle/MinHash configuration."""

    def __init__(self, stored: str, current: str, where: str) -> None:
        self.stored = stored
        self.current = current
        self.where = where
        super().__init__(
            f"{where} holds signatures made with configuration {stored!r}, but this detector uses "
            f"{current!r}. Signatures of different configurations cannot be compared: open the state "
            "with the configuration it was made with, or start a new state folder and add the articles again."
        )


class DuplicateIdError(DedupError):
    """An article id was added a second time with different content."""

    def __init__(self, article_id: str, detail: str = "") -> None:
        self.article_id = article_id
        msg = (
            f"article id {article_id!r} was already added with different content; ids must be unique. "
            "Give the new version its own id, or drop the repeated row."
        )
        super().__init__(msg + (f" ({detail})" if detail else ""))


class InputError(DedupError):
    """A row of an input file cannot be used; names the file and line."""

    def __init__(self, path: str, line: int | None, problem: str, fix: str = "", *, unit: str = "line") -> None:
        self.path = path
        self.line = line
        self.problem = problem
        self.fix = fix
        self.unit = unit
        where = path if line is None else f"{path}:{line}" if unit == "line" else f"{path} {unit} {line}"
        super().__init__(f"{where}: {problem}" + (f". {fix}" if fix else ""))

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # (Found by worker processes, raised by the one that reads the results.)
        return functools.partial(InputError, unit=self.unit), (self.path, self.line, self.problem, self.fix)


class StateError(DedupError):
    """The state folder cannot be opened or its content is not a detector state."""
