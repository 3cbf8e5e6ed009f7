"""The guides in docs/ run: every ``>>>`` example of docs/CONVOLUTION.md is executed and its
printed output compared (``doctest``), so the guide cannot go stale.  The same examples run
with ``pytest --doctest-glob='*.md' docs``."""

import doctest
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "CONVOLUTION.md")


def run_guide(path):
    state = np.random.get_state()  # the guide seeds the global RNG; leave it as found
    try:
        return doctest.testfile(path, module_relative=False, verbose=False, report=True)
    finally:
        np.random.set_state(state)


def test_convolution_guide_examples_pass():
    result = run_guide(GUIDE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (above)"
    assert result.attempted >= 100  # about 120 lines of examples; none silently dropped
    with open(GUIDE, encoding="utf-8") as f:
        assert f.read().count("```pycon") >= 25  # examples, each with its explanation


def test_a_wrong_printed_result_fails(tmp_path):
    with open(GUIDE, encoding="utf-8") as f:
        text = f.read()
    broken = tmp_path / "broken.md"
    broken.write_text(text.replace("[7, 15, 31, 47, 63, 95, 159, 223]", "[7, 15, 31]"))
    assert run_guide(str(broken)).failed == 2  # the formula's line and summary's line
