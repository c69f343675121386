"""The XLA flag the experiments apply: added once, never overriding the user's choice."""

from gan_jax import xla_config

FLAG = xla_config.FAST_CPU_CONVOLUTIONS


def test_added_to_empty_and_existing_flags(monkeypatch):
    monkeypatch.setattr(xla_config, "_jaxlib_at_least", lambda *a: True)
    env = {}
    assert xla_config.use_fast_cpu_convolutions(env) and env["XLA_FLAGS"] == FLAG
    assert xla_config.use_fast_cpu_convolutions(env) and env["XLA_FLAGS"] == FLAG  # idempotent
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    xla_config.use_fast_cpu_convolutions(env)
    assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=8 {FLAG}"


def test_respects_user_setting_opt_out_and_old_jaxlib(monkeypatch):
    monkeypatch.setattr(xla_config, "_jaxlib_at_least", lambda *a: True)
    env = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=all"}
    assert not xla_config.use_fast_cpu_convolutions(env)
    assert env["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=all"
    env = {"GAN_JAX_PLAIN_XLA": "1"}
    assert not xla_config.use_fast_cpu_convolutions(env) and "XLA_FLAGS" not in env
    monkeypatch.setattr(xla_config, "_jaxlib_at_least", lambda *a: False)
    env = {}
    assert not xla_config.use_fast_cpu_convolutions(env) and "XLA_FLAGS" not in env


def test_installed_jaxlib_is_recognised():
    assert xla_config._jaxlib_at_least(0, 4)
    assert not xla_config._jaxlib_at_least(99, 0)
