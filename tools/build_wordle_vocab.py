"""Build ``wordle_words.txt``, the Wordle vocabulary, from two registry packages.

Run from the repository root (the two packages are build-time tools, not runtime dependencies)::

    pip install english-words==2.0.2 wordfreq==3.1.1
    python tools/build_wordle_vocab.py

The committed file was built with english-words 2.0.2 and wordfreq 3.1.1. A word is kept when it

* is an entry of the ``web2`` list of ``english-words`` (Webster's Second) that is already written in
  five lowercase letters a-z (web2 capitalizes proper nouns, so "paris" or "david" do not qualify);
* has ``wordfreq.zipf_frequency(word, "en") >= 2.0`` (obscure dictionary words go);
* is not an "s"-plural of a lowercase 4-letter web2 word that itself passes the frequency bar
  ("times", "needs"; Wordle answer lists avoid these). Words ending in "ss" or "us" are never treated
  as plurals, and "chaos" and "corps" are kept by hand.

Words are sorted by descending ``wordfreq.word_frequency`` (ties alphabetically), one per line, after
a single ``#`` header line. ``lmrl.tasks.wordle`` skips ``#`` lines when reading.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "harness" / "tasks" / "data" / "wordle_words.txt"
MIN_ZIPF = 2.0
NOT_PLURALS = frozenset({"chaos", "corps"})


def build() -> list[str]:
    from english_words import get_english_words_set
    from wordfreq import word_frequency, zipf_frequency

    lowercase = {w for w in get_english_words_set(["web2"]) if re.fullmatch(r"[a-z]+", w)}

    def common(word: str) -> bool:
        return zipf_frequency(word, "en") >= MIN_ZIPF

    bases = {w for w in lowercase if len(w) == 4 and common(w)}

    def plural(word: str) -> bool:
        return (
            word.endswith("s")
            and not word.endswith(("ss", "us"))
            and word[:4] in bases
            and word not in NOT_PLURALS
        )

    words = [w for w in lowercase if len(w) == 5 and common(w) and not plural(w)]
    return sorted(words, key=lambda w: (-word_frequency(w, "en"), w))


def main() -> None:
    words = build()
    header = (
        f"# {len(words)} five-letter words: lowercase web2 entries of english-words "
        f"{version('english-words')} with wordfreq {version('wordfreq')} zipf_frequency(en) >= {MIN_ZIPF}, "
        "minus s-plurals of 4-letter words; by descending frequency. "
        "Built by python tools/build_wordle_vocab.py"
    )
    OUTPUT.write_text(header + "\n" + "".join(w + "\n" for w in words), encoding="ascii")
    print(f"wrote {len(words)} words to {OUTPUT}")


if __name__ == "__main__":
    main()
