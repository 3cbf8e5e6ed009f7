"""Build the embedded text data from Debian's ``fortunes`` package (BSD licence, see
TEXT_DATA.md): a word-level language-model corpus and a labelled sentence set.

    apt-get download fortunes                      # fortunes_1%3a1.99.1-7.3_all.deb
    python apps/data/make_text_corpus.py fortunes_1%3a1.99.1-7.3_all.deb

writes, byte for byte the same each time (gzip with no name and mtime 0):

``fortunes_lm/{train,test}.txt.gz``  one fortune per line, lower-cased, words and punctuation
    split by spaces, words outside the 6,000 most frequent replaced by ``<unk>`` (the Penn
    Treebank's convention); every 10th fortune of each category goes to test.
``fortunes_text/{train,test}.tsv.gz``  ``category<TAB>text`` for the fortunes of four
    categories (computers, food, law, sports) of at most 40 words; same split.
"""

import collections
import gzip
import io
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LM_CATEGORIES = ("computers", "science", "wisdom", "work", "people", "politics")
TEXT_CATEGORIES = ("computers", "food", "law", "sports")
VOCAB = 6000
MAX_WORDS = 40
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[.,!?;:]")


def fortunes(folder, category):
    """The fortunes of one category file, each as a list of tokens."""
    with open(os.path.join(folder, category), encoding="utf-8", errors="replace") as f:
        entries = f.read().split("\n%\n")
    out = []
    for entry in entries:
        words = TOKEN.findall(entry.lower())
        if words:
            out.append(words)
    return out


def write_gzip(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as g:
        g.write("".join(line + "\n" for line in lines).encode("utf-8"))
    with open(path, "wb") as f:
        f.write(raw.getvalue())


def split(entries):
    train = [e for k, e in enumerate(entries) if k % 10 != 9]
    test = [e for k, e in enumerate(entries) if k % 10 == 9]
    return train, test


def build(folder):
    lm = {c: split(fortunes(folder, c)) for c in LM_CATEGORIES}
    counts = collections.Counter(w for tr, _ in lm.values() for e in tr for w in e)
    vocab = {w for w, _ in counts.most_common(VOCAB)}
    for part, index in (("train", 0), ("test", 1)):
        lines = [" ".join(w if w in vocab else "<unk>" for w in e)
                 for c in LM_CATEGORIES for e in lm[c][index]]  # fmt: skip
        write_gzip(os.path.join(HERE, "fortunes_lm", f"{part}.txt.gz"), lines)
    for part, index in (("train", 0), ("test", 1)):
        lines = []
        for c in TEXT_CATEGORIES:
            entries = [e for e in split(fortunes(folder, c))[index] if len(e) <= MAX_WORDS]
            lines += [f"{c}\t{' '.join(e)}" for e in entries]
        write_gzip(os.path.join(HERE, "fortunes_text", f"{part}.tsv.gz"), lines)


def main(deb):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        build(os.path.join(tmp, "usr", "share", "games", "fortunes"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python apps/data/make_text_corpus.py fortunes_<version>_all.deb")
    main(sys.argv[1])
