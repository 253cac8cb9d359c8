"""Fuzzing the pickle and .npy loaders: a seeded corpus (random opcode streams, truncations at every byte and
random mutations of a small valid pickle, the structural bombs of hostile.py, truncated object .npy files) is
loaded in a child process whose address space is capped at 1.5 GiB above what its imports map.

Every input must load or be refused with an AssetError that names it, with no allocation failing on the way
(a MemoryError or torch's "can't allocate" anywhere in the exception chain would mean a declared size was
trusted); every bomb must be refused. The run takes about 10 s; the timeout is only a hang guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BUDGET = 1536 << 20
CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import fuzz_corpus; fuzz_corpus.main(sys.argv[2], int(sys.argv[3]))"


pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc and RLIMIT_AS")


@pytest.fixture(scope="module")
def fuzz_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("fuzz")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(HERE), str(folder), str(BUDGET)],
            capture_output=True, text=True, timeout=100, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        pytest.fail(f"the fuzz child hung; last case started: {last}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.timeout(120)
def test_every_input_loads_or_is_refused_by_name(fuzz_records: list[dict]) -> None:
    outcomes = Counter(r["outcome"] for r in fuzz_records)
    assert set(outcomes) <= {"loaded", "AssetError"}, [r for r in fuzz_records if r["outcome"] not in outcomes][:5]
    unnamed = [r for r in fuzz_records if r["outcome"] == "AssetError" and f"'{r['name']}'" not in r["message"]]
    assert not unnamed, unnamed[:5]
    # The corpus reaches both sides: the valid pickle and some mutations load, most streams are refused.
    assert outcomes["loaded"] > 1 and outcomes["AssetError"] > 2000, outcomes
    assert next(r for r in fuzz_records if r["name"] == "valid.pkl")["outcome"] == "loaded"


@pytest.mark.timeout(120)
def test_no_allocation_fails_under_the_memory_cap(fuzz_records: list[dict]) -> None:
    trusted = [r for r in fuzz_records if r.get("alloc")]
    assert not trusted, trusted[:5]


@pytest.mark.timeout(120)
def test_every_bomb_and_truncation_is_refused(fuzz_records: list[dict]) -> None:
    must = [r for r in fuzz_records if r["must_refuse"]]
    assert len(must) > 1300  # every byte of the 1,288-byte valid pickle, 40 cut .npy files, 16 bombs
    loaded = [r["name"] for r in must if r["outcome"] != "AssetError"]
    assert not loaded, loaded[:10]
    bombs = {r["label"]: r["message"] for r in must}
    assert "more elements than the 150,000 allowed" in bombs["nested_lists/generic_model.pkl"]
    assert "(1000000000, 3) float64 tensor" in bombs["zero_strides/generic_model.pkl"]
    assert "declares shape (100000000000,)" in bombs["huge_header/landmark_embedding.npy"]
    assert "memo index 2147483647" in bombs["memo_bomb.pkl"]
    assert "more than 1,000,000 opcodes" in bombs["many_opcodes.pkl"]
    assert "nested more than 100 levels" in bombs["deep.pkl"]
    assert "declares 2,000,000,000 elements" in bombs["lying_storage/generic_model.pkl"]
    assert "declares 2,000,000,000 elements" in bombs["legacy.pt"]
    assert "more than the file's" in bombs["deflate_bomb.pt"]
