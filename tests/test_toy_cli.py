"""experiments.toy: the theory lab's command line dispatches to both experiment families."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _toy(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "experiments.toy", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_toy_cli_writes_results_and_figure(tmp_path):
    result = _toy("--experiment=optimal_d", "--quick", "--seeds=2", f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert 0.0 <= record["max_gap"] < 1.0 and record["seeds"] == 2
    assert all((tmp_path / name).stat().st_size > 10_000 for name in record["figures"])
    assert '"max_gap"' in result.stdout


def test_toy_cli_lists_valid_experiments_and_objectives(tmp_path):
    result = _toy("--experiment=circle")
    assert result.returncode != 0
    assert "optimal_d|value_jsd|gaussian_1d|parallel_lines|ring|grid|spiral" in result.stderr
    result = _toy("--experiment=ring", "--objectives=nonsaturating,dragan",
                  f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert "dragan" in result.stderr and "wgan-gp" in result.stderr
