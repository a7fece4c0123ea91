"""The micro-ViT of notebook 03 learns whichever CPU vector kernels PyTorch picks.

PyTorch chooses its CPU kernels (DEFAULT, AVX2, AVX512) from the CPU at import time, and they round
differently: even torch.randn's normal fill differs in the last bit, so the weights a seed gives
differ too. ATEN_CPU_CAPABILITY forces a path, so one machine checks every path its CPU supports,
each in its own process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["default", "avx2", "avx512"]
SEEDS = (0, 10)  # 0 is the notebook's; 10 stalled below 0.6 on all three paths before the fix

TRAIN = """
import json, sys, torch
capability = torch.backends.cpu.get_cpu_capability()
result = {"capability": capability, "accuracy": {}}
if capability.lower() == sys.argv[1]:  # otherwise this CPU lacks the path and PyTorch fell back
    from course_utils.patches import synthetic_squares, train_micro_vit
    from tests.test_patches import square_hit_rate
    for seed in sys.argv[2:]:
        model, result["accuracy"][seed] = train_micro_vit(seed=int(seed))
        if seed == "0":
            result["square_hits"] = square_hit_rate(model, synthetic_squares(40, seed=7)[0])
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def trained() -> dict[str, dict]:
    """Train on every path at once (each training uses one thread), then collect the results."""
    runs = {
        path: subprocess.Popen(
            [sys.executable, "-c", TRAIN, path, *map(str, SEEDS)],
            cwd=ROOT,
            text=True,
            env={**os.environ, "ATEN_CPU_CAPABILITY": path},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for path in PATHS
    }
    results = {}
    for path, run in runs.items():
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        results[path] = json.loads(out.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("path", PATHS)
def test_micro_vit_learns_on_every_cpu_kernel_path(trained, path):
    result = trained[path]
    if result["capability"].lower() != path:
        pytest.skip(f"esta CPU no admite {path}: PyTorch usa {result['capability']}")
    assert result["accuracy"].keys() == {str(seed) for seed in SEEDS}
    assert all(accuracy >= 0.95 for accuracy in result["accuracy"].values()), result
    assert result["square_hits"] >= 0.9, result  # the notebook's model (seed 0) looks at the square
