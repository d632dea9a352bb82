"""Pure text steps: cleaning, normalization, shingling and credits. No I/O, no globals that change results."""

from dedup.text.clean import Cleaned, clean
from dedup.text.credits import Credit, detect_byline_credit, detect_credits
from dedup.text.normalize import normalize
from dedup.text.shingles import shingle_hashes, words

__all__ = ["Cleaned", "Credit", "clean", "detect_byline_credit", "detect_credits", "normalize", "shingle_hashes",
           "words"]
