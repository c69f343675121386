"""The benchmark helper runs and reports consistent numbers (speed itself is not asserted)."""

from gan_jax.benchmark import time_train_step


def test_time_train_step_reports(tiny_config):
    result = time_train_step(tiny_config, num_images=64, steps_per_repeat=2, repeats=3)
    assert set(result) == {"compile_s", "steps_per_s", "steps_per_s_all", "images_per_s"}
    assert len(result["steps_per_s_all"]) == 3
    assert min(result["steps_per_s_all"]) <= result["steps_per_s"] <= max(result["steps_per_s_all"])
    assert result["images_per_s"] == result["steps_per_s"] * tiny_config.batch_size
