"""Train-step speed, JAX against PyTorch eager: ``python -m experiments.benchmark``.

Times one Algorithm 1 iteration (k D updates + one G update, Adam, float32) of our jitted JAX
step and of the same model and step in PyTorch eager (``experiments/torch_reference.py``), in
interleaved rounds inside this one process: per round N JAX steps then N PyTorch steps, the
order reversed every other round, so the machine's drift hits both alike. Compile time (JAX's
first call; PyTorch's first step) is reported apart; speeds are medians over rounds, and the
JAX/PyTorch ratio is given both as the ratio of the medians and as the median of the per-round
ratios (each from two measurements taken back to back).

The machine's load is watched per round (``/proc/stat``): the table gives, for every round, the
cores that other processes kept busy during it, and the ratio is also given over the quiet rounds
only. This matters: PyTorch's OpenMP threads collapse when another process takes a core, far more
than XLA's thread pool, so contended rounds skew the ratio towards JAX.

PyTorch runs in its fastest configuration measured here (2-core CPU, PyTorch 2.13): default
thread count, channels_last, fused Adam (``--torch_channels_last``, ``--torch_adam`` to change).

PyTorch is optional (``pip install -e ".[bench]"``); without it (or with ``--notorch``) only
JAX is timed. Output: one JSON line per implementation and one for the comparison, then a
table. Random pixels stand in for MNIST (the data does not change the work done).
"""

import importlib.util
import json
import math
import os

import jax
from absl import app, flags

import gan_jax
from gan_jax.models import layers
from gan_jax.benchmark import (QUIET_CORES, SweepTimer, TrainStepTimer, cpu_model, interleave,
                               matmul_gflops, random_images, step_flops)

flags.DEFINE_enum("objective", "nonsaturating", sorted(gan_jax.OBJECTIVES), "GAN objective.")
flags.DEFINE_enum("arch", "thesis", sorted(gan_jax.ARCHITECTURES), "Architecture.")
flags.DEFINE_integer("batch_size", None, "Minibatch size (default: the run's, see "
                     "experiments.mnist).")
flags.DEFINE_integer("disc_steps", None, "k (default: the objective's).")
flags.DEFINE_integer("latent_dim", None, "Dimension of z (default: the architecture's).")
flags.DEFINE_integer("sweep", 0, "If N > 0: time N runs vmapped into one step against one "
                     "run at a time (N sequential runs), instead of JAX against PyTorch.")
flags.DEFINE_integer("num_images", None, "Size of the in-memory random dataset (default: "
                     "MNIST's 60,000 training images, or as many as fit in 256 MiB of float32 "
                     "for larger images; the step's data handling is timed with it).")
flags.DEFINE_integer("rounds", 5, "Interleaved timed rounds (medians are reported).")
flags.DEFINE_integer("steps", 20, "Steps per implementation per round.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per implementation after the first call.")
flags.DEFINE_boolean("torch", None, "Also time the PyTorch eager reference (default: when "
                     "torch is importable).")
flags.DEFINE_boolean("torch_channels_last", True, "PyTorch: channels_last memory format.")
flags.DEFINE_boolean("flops", True, "Also report each step's FLOPs (XLA's cost analysis; "
                     "PyTorch's FlopCounterMode), the FLOP rates, and the machine's float32 "
                     "matmul rate in each framework.")
flags.DEFINE_enum("torch_adam", "fused", ["fused", "foreach", "forloop"],
                  "PyTorch: Adam implementation.")

FLAGS = flags.FLAGS


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def default_num_images(config, budget_bytes: int = 256 * 2**20) -> int:
    """60,000 (MNIST's training set) or fewer, so that the float32 set fits ``budget_bytes``.

    Any example shape: images ``[H, W, C]`` or the toy models' points ``[D]``."""
    size = math.prod(gan_jax.get_architecture(config.arch).image_shape)
    return min(60000, budget_bytes // (4 * size))


def format_table(report: dict, descriptions: dict) -> str:
    """Human-readable summary of :func:`gan_jax.benchmark.interleave`'s report."""
    rows = [("implementation", "compile s", "steps/s", "images/s", "steps/s per round",
             "other processes' cores per round")]
    for name in report["order"]:
        r = report["results"][name]
        rows.append((name, f"{r['compile_s']:.2f}", f"{r['steps_per_s']:.2f}",
                     f"{r['images_per_s']:.0f}",
                     " ".join(f"{x:.2f}" for x in r["steps_per_s_all"]),
                     " ".join("?" if x is None else f"{x:.1f}"
                              for x in r.get("other_cores_all", []))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for pair, ratio in report["ratios"].items():
        quiet = ratio.get("median_of_quiet_ratios")
        lines.append(f"ratio {pair}: {ratio['ratio_of_medians']:.3f} (ratio of medians), "
                     f"{ratio['median_of_ratios']:.3f} (median of per-round ratios: "
                     f"{' '.join(f'{x:.2f}' for x in ratio['per_round'])}), "
                     + ("n/a" if quiet is None else f"{quiet:.3f}")
                     + f" (median over the {ratio.get('quiet_rounds', 0)} quiet rounds, "
                     f"other processes < {QUIET_CORES} cores)")
    for name, text in descriptions.items():
        lines.append(f"{name}: {text}")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.layers is not None:
        layers.set_layer_form(FLAGS.layers)
    config = gan_jax.Config(objective=FLAGS.objective, arch=FLAGS.arch,
                            batch_size=FLAGS.batch_size, disc_steps=FLAGS.disc_steps,
                            latent_dim=FLAGS.latent_dim)
    if FLAGS.sweep > 0:
        return sweep_main(config)
    use_torch = _torch_available() if FLAGS.torch is None else FLAGS.torch
    images = random_images(config, FLAGS.num_images or default_num_images(config))

    timers = {"jax": TrainStepTimer(config, images=images)}
    descriptions = {"jax": f"JAX {jax.__version__} jit on {jax.devices()[0].platform}, "
                           f"{layers.resolved_form()} layer forms, "
                           f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"}
    if use_torch:
        if not _torch_available():
            raise app.UsageError('--torch needs PyTorch: pip install -e ".[bench]"')
        from experiments import torch_reference  # optional dependency

        if config.arch not in torch_reference.TORCH_ARCHITECTURES:
            if FLAGS.torch:
                torch_reference.get_torch_architecture(config.arch)  # raises, listing them
            use_torch = False
            descriptions["pytorch"] = f"skipped: no PyTorch reference for {config.arch!r}"
        elif config.objective not in torch_reference.GENERATOR_LOSSES:
            if FLAGS.torch:
                raise app.UsageError(
                    f"no PyTorch reference for objective {config.objective!r}; it has "
                    f"{sorted(torch_reference.GENERATOR_LOSSES)}")
            use_torch = False
            descriptions["pytorch"] = f"skipped: no PyTorch reference for {config.objective!r}"
    if use_torch:
        torch_timer = torch_reference.TorchStepTimer(
            config, images, channels_last=FLAGS.torch_channels_last, adam=FLAGS.torch_adam)
        timers["pytorch"] = torch_timer
        descriptions["pytorch"] = torch_timer.describe()

    flops = {}
    if FLAGS.flops:
        flops["jax"] = step_flops(config, len(images))
        if use_torch:
            flops["pytorch"] = torch_reference.step_flops(
                torch_reference.TorchTrainStep(config, images[:config.batch_size * 2],
                                               channels_last=FLAGS.torch_channels_last,
                                               adam=FLAGS.torch_adam))
    load_before = os.getloadavg()
    report = interleave(timers, rounds=FLAGS.rounds, steps=FLAGS.steps, warmup=FLAGS.warmup,
                        images_per_step=config.batch_size * config.disc_steps)
    load_after = os.getloadavg()
    common = {"arch": config.arch, "objective": config.objective, "num_images": len(images),
              "batch_size": config.batch_size, "disc_steps": config.disc_steps,
              "rounds": FLAGS.rounds, "steps": FLAGS.steps}
    machine = {"cpu": cpu_model()}
    if FLAGS.flops:
        machine["matmul_gflops"] = {"jax": matmul_gflops()}
        if use_torch:
            machine["matmul_gflops"]["pytorch"] = torch_reference.matmul_gflops()
    for name in report["order"]:
        result = dict(report["results"][name])
        if flops.get(name):
            result["gflop_per_step"] = flops[name] / 1e9
            result["gflop_per_s"] = flops[name] / 1e9 * result["steps_per_s"]
        report["results"][name] = result
        print(json.dumps({"implementation": name, **common, "setup": descriptions[name],
                          **_rounded(result)}))
    print(json.dumps({"machine": _rounded(machine)}))
    for pair, ratio in report["ratios"].items():
        print(json.dumps({"ratio": pair, **common, **_rounded(ratio),
                          "loadavg_before": _rounded(list(load_before)),
                          "loadavg_after": _rounded(list(load_after))}))
    print()
    print(f"{config.arch} GAN, {config.objective}, batch {config.batch_size}, k = "
          f"{config.disc_steps}, {len(images)} training images: {FLAGS.rounds} interleaved "
          f"rounds of {FLAGS.steps} steps (medians; images/s = real images seen by D)")
    print(format_table(report, descriptions))
    counters = {"jax": "XLA cost analysis", "pytorch": "FlopCounterMode"}
    for name in report["order"]:
        result = report["results"][name]
        if "gflop_per_step" in result:
            print(f"{name}: {result['gflop_per_step']:.2f} GFLOP/step ({counters[name]}) -> "
                  f"{result['gflop_per_s']:.0f} GFLOP/s")
    rates = machine.get("matmul_gflops", {})
    print(f"machine: {machine['cpu']}" + ("; float32 2048x2048 matmul: " + ", ".join(
        f"{name} {rate:.0f} GFLOP/s" for name, rate in rates.items()) if rates else ""))
    print("load average (1, 5, 15 min) before: " + " ".join(f"{x:.2f}" for x in load_before)
          + ", after: " + " ".join(f"{x:.2f}" for x in load_after))


def sweep_main(config):
    """N vmapped runs against sequential single runs, interleaved; compares images/s."""
    n = FLAGS.sweep
    images = random_images(config, FLAGS.num_images or default_num_images(config))
    name = f"vmap{n}"
    timers = {"single": TrainStepTimer(config, images=images),
              name: SweepTimer(config, n, images=images)}
    report = interleave(timers, rounds=FLAGS.rounds, steps=FLAGS.steps, warmup=FLAGS.warmup,
                        images_per_step=config.batch_size * config.disc_steps)
    single = report["results"]["single"]["steps_per_s"] * config.batch_size * config.disc_steps
    vmapped = report["results"][name]["steps_per_s"] * config.batch_size * config.disc_steps * n
    per_round = [n / r for r in report["ratios"][f"single/{name}"]["per_round"]]
    result = {"arch": config.arch, "batch_size": config.batch_size, "runs": n,
              "sequential_images_per_s": single, "vmapped_images_per_s": vmapped,
              "speedup_of_medians": vmapped / single, "speedup_per_round": per_round,
              "compile_s": {k: v["compile_s"] for k, v in report["results"].items()}}
    print(json.dumps(_rounded(result)))
    print(f"{config.arch}, batch {config.batch_size}: {n} runs vmapped {vmapped:.0f} images/s vs "
          f"{n} sequential runs {single:.0f} images/s -> {vmapped / single:.2f}x "
          f"(per round: {' '.join(f'{x:.2f}' for x in per_round)})")


if __name__ == "__main__":
    app.run(main)
