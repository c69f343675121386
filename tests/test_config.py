"""The frozen config: defaults from the thesis, validation, JSON round trip, resume checks."""

import dataclasses
import json

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
    ("objective", "wgan-foo", r"Unknown objective 'wgan-foo'; valid: \['hinge', 'lsgan', 'minimax', 'nonsaturating', 'wgan', 'wgan-gp'\]"),
    ("arch", "resnet", r"Unknown architecture 'resnet'; valid: \['began', 'began_reference', 'dcgan', 'dcgan32', 'dcgan64', 'goodfellow_mlp', "),
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


def test_objective_and_architecture_defaults_fill_unset_fields():
    thesis = Config()
    assert (thesis.optimizer, thesis.learning_rate, thesis.b1, thesis.b2, thesis.batch_size,
            thesis.disc_steps, thesis.latent_dim, thesis.clip, thesis.gp_weight) == (
        "adam", 1e-3, 0.5, 0.999, 128, 1, 96, None, None)
    dcgan = Config(arch="dcgan")
    assert (dcgan.learning_rate, dcgan.b1, dcgan.latent_dim, dcgan.batch_size) == (2e-4, 0.5, 100, 128)
    wgan = Config(objective="wgan", arch="dcgan")  # the objective's paper wins over the arch's
    assert (wgan.optimizer, wgan.learning_rate, wgan.batch_size, wgan.disc_steps, wgan.clip,
            wgan.b1, wgan.b2, wgan.latent_dim) == ("rmsprop", 5e-5, 64, 5, 0.01, None, None, 100)
    gp = Config(objective="wgan-gp")
    assert (gp.optimizer, gp.learning_rate, gp.b1, gp.b2, gp.batch_size, gp.disc_steps,
            gp.gp_weight, gp.clip) == ("adam", 1e-4, 0.0, 0.9, 64, 5, 10.0, None)
    # Flags win; replace() re-derives what was never set.
    assert Config(objective="wgan", learning_rate=1e-4, clip=0.05).learning_rate == 1e-4
    moved = thesis.replace(objective="wgan")
    assert (moved.optimizer, moved.learning_rate, moved.clip) == ("rmsprop", 5e-5, 0.01)
    kept = Config(learning_rate=3e-3).replace(objective="wgan")
    assert kept.learning_rate == 3e-3 and kept.disc_steps == 5
    assert moved.replace(objective="nonsaturating") == thesis


@pytest.mark.parametrize("changes,match", [
    ({"clip": 0.01}, r"clip applies to objective \['wgan'\] only"),
    ({"gp_weight": 5.0}, r"gp_weight applies to objective \['wgan-gp'\] only"),
    ({"objective": "wgan", "b1": 0.5}, r"Adam's betas; optimizer 'rmsprop'"),
    ({"optimizer": "sgd"}, r"Unknown optimizer 'sgd'; valid: \['adam', 'rmsprop'\]"),
    ({"wgan_warmup": True}, "wgan_warmup applies to objective 'wgan' only"),
    ({"objective": "wgan", "clip": 0.0}, "clip must be > 0"),
])
def test_settings_of_other_objectives_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        Config(**changes)


def test_config_json_records_effective_values(tmp_path):
    path = str(tmp_path / "config.json")
    save_config(Config(objective="wgan"), path)
    saved = json.loads(open(path).read())
    assert (saved["optimizer"], saved["learning_rate"], saved["clip"], saved["batch_size"]) == (
        "rmsprop", 5e-5, 0.01, 64)
    assert "explicit" not in saved
    assert load_config(path) == Config(objective="wgan")


def test_d_activation_choice():
    assert Config().d_activation == "leaky_relu" and Config(arch="dcgan").d_activation == "leaky_relu"
    assert Config(arch="mlp").d_activation is None  # fixed by the architecture
    assert Config(arch="dcgan", d_activation="relu").d_activation == "relu"
    with pytest.raises(ValueError, match=r"d_activation is fixed by --arch=mlp; it can be chosen "
                                         r"for \['dcgan', 'dcgan32', 'dcgan64', 'thesis', 'thesis_plain'\]"):
        Config(arch="mlp", d_activation="relu")
    with pytest.raises(ValueError, match=r"Unknown d_activation 'elu' for --arch=thesis; valid: "
                                         r"\['leaky_relu', 'relu'\]"):
        Config(d_activation="elu")


def test_d_dropout_choice():
    assert Config().d_dropout == 0.0 and Config(arch="dcgan", d_dropout=0.4).d_dropout == 0.4
    with pytest.raises(ValueError, match=r"d_dropout is not offered by --arch=thesis; it is by "
                                         r"\['dcgan', 'dcgan32', 'dcgan64'\]"):
        Config(d_dropout=0.4)
    with pytest.raises(ValueError, match=r"d_dropout must be in \[0, 1\), got 1.0"):
        Config(arch="dcgan", d_dropout=1.0)

