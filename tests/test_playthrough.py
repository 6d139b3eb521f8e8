"""Golden playthroughs: complete rounds and a complete game, move by move, compared as
text. If a rules change is intended, regenerate with
``python -m blobcore.playthrough --regen tests/golden`` and review the diff."""
from pathlib import Path

import pytest

from blobcore.playthrough import GOLDEN

GOLDEN_DIR = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_playthrough_matches_golden(name):
    expected = (GOLDEN_DIR / name).read_text()
    actual = GOLDEN[name]()
    assert actual.splitlines() == expected.splitlines()


def test_every_golden_file_has_a_generator():
    assert sorted(p.name for p in GOLDEN_DIR.glob("*.txt")) == sorted(GOLDEN)
