"""The frozen config: defaults from the thesis, validation, JSON round trip, resume checks."""

import dataclasses

import pytest

from gan_jax.config import Config, check_resumable, load_config, save_config


def test_defaults_are_the_thesis_settings():
    c = Config()
    assert (c.objective, c.arch, c.prior, c.latent_dim) == ("nonsaturating", "thesis", "uniform", 96)
    assert (c.learning_rate, c.b1, c.b2, c.disc_steps, c.batch_size) == (1e-3, 0.5, 0.999, 1, 128)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().seed = 3


@pytest.mark.parametrize("field,value,match", [
    ("objective", "wgan-foo", r"Unknown objective 'wgan-foo'; valid: \['minimax', 'nonsaturating'\]"),
    ("arch", "resnet", r"Unknown architecture 'resnet'; valid: \['dcgan', 'dcgan64', 'goodfellow_mlp', 'mlp', 'thesis', 'thesis_plain'\]"),
    ("prior", "cauchy", r"valid: \['normal', 'uniform'\]"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("disc_steps", 0, "disc_steps must be >= 1"),
    ("b1", 1.0, r"b1 must be in \[0, 1\)"),
    ("learning_rate", 0.0, "learning_rate must be > 0"),
])
def test_invalid_values_are_rejected_with_clear_errors(field, value, match):
    with pytest.raises(ValueError, match=match):
        Config(**{field: value})


def test_json_round_trip(tmp_path):
    c = Config(objective="minimax", seed=7, workdir=str(tmp_path), data_dir="/x")
    save_config(c, str(tmp_path / "config.json"))
    assert load_config(str(tmp_path / "config.json")) == c


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_config(str(tmp_path / "config.json"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json: corrupt"):
        load_config(str(tmp_path / "config.json"))
    (tmp_path / "config.json").write_text('{"objective": "minimax", "colour": "red"}')
    with pytest.raises(ValueError, match=r"Unknown config fields \['colour'\]"):
        load_config(str(tmp_path / "config.json"))


def test_check_resumable():
    saved = Config(num_steps=100, workdir="/a")
    check_resumable(saved, saved.replace(num_steps=500, workdir="/b", log_every=7), "p")
    with pytest.raises(ValueError, match=r"objective: saved 'nonsaturating' vs requested 'minimax'"):
        check_resumable(saved, saved.replace(objective="minimax"), "p")


def test_computation_drops_only_bookkeeping_fields():
    a = Config(num_steps=10, workdir="/a", log_every=3)
    b = Config(num_steps=99, workdir="/b", sample_every=5)
    assert a.computation() == b.computation()
    assert hash(a.computation()) == hash(b.computation())
    assert a.computation() == a.replace(seed=1).computation()  # the seed only makes keys
    assert a.computation() != a.replace(objective="minimax").computation()
