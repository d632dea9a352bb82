"""Pure text steps: normalization, shingling and credits. No I/O, no globals that change results."""

from dedup.text.credits import Credit, detect_byline_credit
from dedup.text.normalize import normalize
from dedup.text.shingles import shingle_hashes, words

__all__ = ["Credit", "detect_byline_credit", "normalize", "shingle_hashes", "words"]
