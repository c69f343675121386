"""The benchmark helpers run and report consistent numbers (speed itself is not asserted)."""

import pytest

from gan_jax.benchmark import TrainStepTimer, interleave, time_train_step
from gan_jax.config import Config


def test_time_train_step_reports(tiny_config):
    result = time_train_step(tiny_config, num_images=64, steps_per_repeat=2, repeats=3)
    assert set(result) == {"compile_s", "steps_per_s", "steps_per_s_all", "images_per_s"}
    assert len(result["steps_per_s_all"]) == 3
    assert min(result["steps_per_s_all"]) <= result["steps_per_s"] <= max(result["steps_per_s_all"])
    assert result["images_per_s"] == result["steps_per_s"] * tiny_config.batch_size


def test_train_step_timer_runs_in_rounds(tiny_config, tiny_images):
    timer = TrainStepTimer(tiny_config, images=tiny_images)
    with pytest.raises(RuntimeError, match="compile"):
        timer.run(1)
    assert timer.compile() > 0
    assert timer.run(2) > 0 and timer.run(1) > 0
    assert int(timer._state.step) == 4  # 1 + 2 + 1 steps, state carried across rounds
    assert set(timer.metrics) == {"d_loss", "d_real", "d_fake", "g_loss", "g_d_fake"}


class FakeTimer:
    """Logs its calls; timed round i takes ``seconds_per_step[i]`` per step (warm-up: 1 s)."""

    def __init__(self, name, log, seconds_per_step, warmup_runs=1):
        self.name, self.log, self.seconds_per_step = name, log, list(seconds_per_step)
        self.warmup_runs = warmup_runs

    def compile(self):
        self.log.append((self.name, "compile"))
        return 1.5

    def run(self, n):
        self.log.append((self.name, n))
        if self.warmup_runs:
            self.warmup_runs -= 1
            return float(n)
        return n * self.seconds_per_step.pop(0)


def test_interleave_alternates_and_reports_ratios():
    log = []
    a = FakeTimer("a", log, [0.1, 0.1, 0.2, 0.1])    # 10, 10, 5, 10 steps/s
    b = FakeTimer("b", log, [0.2, 0.25, 0.4, 0.2])   # 5, 4, 2.5, 5 steps/s
    report = interleave({"a": a, "b": b}, rounds=4, steps=3, warmup=2, images_per_step=8)
    assert log == [("a", "compile"), ("b", "compile"), ("a", 2), ("b", 2),
                   ("a", 3), ("b", 3), ("b", 3), ("a", 3), ("a", 3), ("b", 3), ("b", 3), ("a", 3)]
    ra, rb = report["results"]["a"], report["results"]["b"]
    assert report["order"] == ["a", "b"] and report["rounds"] == 4 and report["steps"] == 3
    assert ra["compile_s"] == 1.5
    assert ra["steps_per_s_all"] == pytest.approx([10, 10, 5, 10])
    assert rb["steps_per_s_all"] == pytest.approx([5, 4, 2.5, 5])
    assert ra["steps_per_s"] == pytest.approx(10) and rb["steps_per_s"] == pytest.approx(4.5)
    assert ra["images_per_s"] == pytest.approx(80)
    assert len(ra["other_cores_all"]) == 4
    assert all(x is None or x >= 0 for x in ra["other_cores_all"])
    ratio = report["ratios"]["a/b"]
    assert ratio["per_round"] == pytest.approx([2, 2.5, 2, 2])
    assert ratio["median_of_ratios"] == pytest.approx(2)
    assert ratio["ratio_of_medians"] == pytest.approx(10 / 4.5)
    assert 0 <= ratio["quiet_rounds"] <= 4


def test_interleave_quiet_rounds(monkeypatch):
    """Rounds in which another process held a core are left out of the quiet median."""
    from gan_jax import benchmark

    other = iter([0.0, 0.0, 1.0, 0.0, 0.0, 0.1])  # a/b of rounds 1, 2 (b busy), 3
    monkeypatch.setattr(benchmark, "timed_run",
                        lambda timer, n: (timer.run(n), next(other)))
    a, b = FakeTimer("a", [], [0.1, 0.1, 0.1]), FakeTimer("b", [], [0.2, 0.5, 0.4])
    ratio = interleave({"a": a, "b": b}, rounds=3, steps=1, warmup=1)["ratios"]["a/b"]
    assert ratio["per_round"] == pytest.approx([2, 5, 4])
    assert ratio["quiet_rounds"] == 2
    assert ratio["median_of_quiet_ratios"] == pytest.approx(3)


def test_interleave_single_timer_and_bad_arguments():
    timer = FakeTimer("a", [], [0.5], warmup_runs=0)
    report = interleave({"a": timer}, rounds=1, steps=2, warmup=0)
    assert timer.log == [("a", "compile"), ("a", 2)]
    assert report["ratios"] == {} and report["results"]["a"]["steps_per_s"] == pytest.approx(2)
    with pytest.raises(ValueError, match="rounds"):
        interleave({"a": FakeTimer("a", [], [])}, rounds=0)


def test_format_table():
    from experiments.benchmark import format_table

    result = {"compile_s": 2.0, "steps_per_s": 6.0, "steps_per_s_all": [6.0, 5.5],
              "images_per_s": 768.0, "other_cores_all": [0.04, None]}
    report = {"order": ["jax", "pytorch"], "results": {"jax": result, "pytorch": result},
              "ratios": {"jax/pytorch": {"ratio_of_medians": 1.0, "median_of_ratios": 1.0,
                                         "per_round": [1.0, 1.0], "quiet_rounds": 1,
                                         "median_of_quiet_ratios": 0.9}}}
    table = format_table(report, {"pytorch": "PyTorch eager, channels_last"})
    assert "768" in table and "6.00 5.50" in table and "0.0 ?" in table
    assert "ratio jax/pytorch: 1.000 (ratio of medians)" in table
    assert "0.900 (median over the 1 quiet rounds" in table
    assert "pytorch: PyTorch eager, channels_last" in table


def test_benchmark_cli_without_torch_never_imports_it():
    """`--notorch` times JAX alone, and neither gan_jax nor the CLI imports torch for it."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from absl import app\n"
        "from experiments import benchmark\n"
        "sys.argv = ['benchmark', '--notorch', '--batch_size=8', '--num_images=16',"
        " '--rounds=2', '--steps=1', '--warmup=0']\n"
        "try:\n    app.run(benchmark.main)\nexcept SystemExit as e:\n    assert not e.code, e\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()
            if line.startswith('{"implementation"')]
    assert [row["implementation"] for row in rows] == ["jax"]
    assert rows[0]["batch_size"] == 8 and rows[0]["num_images"] == 16
    assert len(rows[0]["steps_per_s_all"]) == 2
    assert "ratio" not in out.stdout
    machine = next(json.loads(line)["machine"] for line in out.stdout.splitlines()
                   if line.startswith('{"machine"'))
    assert machine["matmul_gflops"]["jax"] > 0 and machine["cpu"]
    assert rows[0]["gflop_per_step"] > 0 and "GFLOP/step (XLA cost analysis)" in out.stdout


def test_sweep_timer_advances_every_run(tiny_config):
    from gan_jax.benchmark import SweepTimer

    timer = SweepTimer(tiny_config, num_runs=3, num_images=64)
    timer.compile()
    assert timer.run(1) > 0
    assert timer._state.step.tolist() == [2, 2, 2]
    assert timer.metrics["d_loss"].shape == (3,)


def test_benchmark_times_a_training_set_of_mnist_size_by_default():
    """The step's data handling scales with the set (epoch orders), so the default set is
    MNIST's 60,000 images, capped at 256 MiB of float32 for 64x64x3 images."""
    import gan_jax
    from experiments.benchmark import default_num_images

    assert default_num_images(gan_jax.Config(arch="thesis")) == 60000
    assert default_num_images(gan_jax.Config(arch="dcgan64")) == 256 * 2**20 // (4 * 64 * 64 * 3)
    # The theory lab's models train on points [D], not images (the toy sweep rows).
    from gan_jax.models import toy as toy_models  # noqa: F401  (registers toy1d / toy2d)
    assert default_num_images(gan_jax.Config(arch="toy2d")) == 60000
    assert default_num_images(gan_jax.Config(arch="toy2d"), budget_bytes=4 * 2 * 100) == 100


# Algorithm 1's matrix products per image for the seed-003 MLP GAN (G 100-128-784, D 784-128-1),
# 2 FLOPs per multiply-add. D update: G forward 2 (100*128 + 128*784) = 226,304; D forward on
# real and fake 2 * 2 (784*128 + 128) = 401,920; their backward (weights and hidden layer, no
# input gradient) 2 * 2 (784*128 + 128 + 128) = 402,432. G update: G forward 226,304; D forward
# 200,960; D backward to its input 2 (128 + 784*128) = 200,960; G backward: weights 226,304 and
# hidden layer 2 * 128*784 = 200,704.
MLP_STEP_FLOPS_PER_IMAGE = (226_304 + 401_920 + 402_432
                            + 226_304 + 200_960 + 200_960 + 226_304 + 200_704)  # 2,085,888


def test_step_flops_counts_the_algorithm_1_work():
    """XLA's FLOP count of the MLP GAN step grows per image by what Algorithm 1 costs by hand.

    Per image, the matrix products (2 FLOPs per multiply-add) of G = 100-128-784 and
    D = 784-128-1 (``MLP_STEP_FLOPS_PER_IMAGE``); elementwise work adds about 1%.
    """
    from gan_jax.benchmark import step_flops

    config = Config(arch="mlp", batch_size=8)
    per_image = (step_flops(config.replace(batch_size=16), 64) - step_flops(config, 64)) / 8
    assert MLP_STEP_FLOPS_PER_IMAGE <= per_image <= 1.05 * MLP_STEP_FLOPS_PER_IMAGE, per_image


def test_cpu_model_names_the_cpu():
    from gan_jax.benchmark import cpu_model

    assert "logical CPUs" in cpu_model() or cpu_model() == "unknown CPU"
