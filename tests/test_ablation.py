"""Seed 001's ablation: one run per (prior, D activation) cell, the combined figure, reruns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gan_jax
from gan_jax.theory import ablation

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def record(tiny_config, tiny_images, tmp_path_factory):
    base = tiny_config.replace(workdir=str(tmp_path_factory.mktemp("ablation")))
    # leaky_relu: the uniform cell is TINY itself, whose step other tests have compiled.
    return base, ablation.run_ablation(base, ["uniform", "normal"], ["leaky_relu"], tiny_images)


def test_cells_differ_only_in_prior_and_activation(record):
    base, rec = record
    assert [c["cell"] for c in rec["cells"]] == ["uniform_leaky_relu", "normal_leaky_relu"]
    configs = [gan_jax.load_config(os.path.join(c["workdir"], "config.json"))
               for c in rec["cells"]]
    assert [(c.prior, c.d_activation) for c in configs] == [("uniform", "leaky_relu"),
                                                           ("normal", "leaky_relu")]
    for config in configs:
        assert config.replace(prior="uniform", workdir=None) == base.replace(workdir=None)
    assert rec["grid_steps"] == [2, 4]  # halfway and final grids (sample_every=2)
    assert all(c["num_steps"] == 4 and c["wall_seconds"] > 0 for c in rec["cells"])
    on_disk = json.load(open(os.path.join(base.workdir, "ablation.json")))
    assert on_disk == rec
    # Two rows (priors) of two grids (one activation, two steps) at 100 dpi.
    assert os.path.getsize(os.path.join(base.workdir, "ablation.png")) > 20_000


def test_rerun_skips_finished_cells_and_keeps_their_time(record, tiny_images):
    base, rec = record
    again = ablation.run_ablation(base, ["uniform", "normal"], ["leaky_relu"], tiny_images)
    assert [c["wall_seconds"] for c in again["cells"]] == [c["wall_seconds"] for c in rec["cells"]]


def test_bad_axes_are_clear_errors(tiny_config, tmp_path):
    base = tiny_config.replace(workdir=str(tmp_path))
    with pytest.raises(ValueError, match=r"Unknown prior \['cauchy'\]; valid: \['normal', 'uniform'\]"):
        ablation.run_ablation(base, ["cauchy"])
    with pytest.raises(ValueError, match=r"Unknown d_activation \['elu'\]"):
        ablation.run_ablation(base, d_activations=["elu"])
    with pytest.raises(ValueError, match="d_activation is fixed by --arch=mlp"):
        ablation.run_ablation(base.replace(arch="mlp"), ["uniform"], ["relu"])


def test_cli_reports_bad_flag_values():
    result = subprocess.run(
        [sys.executable, "-m", "experiments.ablation", "--priors=uniform,laplace",
         "--workdir=/tmp/unused"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Unknown prior ['laplace']; valid: ['normal', 'uniform']" in result.stderr
