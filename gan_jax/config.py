"""The one frozen configuration object of a run, mirrored one-to-one by the absl flags.

Defaults are the thesis GAN of seed 000 (SPEC 3A): nonsaturating objective, U(-1, 1) prior with
96 dimensions, Adam(lr 1e-3, betas 0.5 / 0.999), k = 1 discriminator step per generator step,
minibatches of 128 (CS231n assignment 3, which the thesis follows).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

# Fields that may differ between a run and its resumption: where things live, how long to
# train and how often to report. Everything else defines the computation and must match.
RESUMABLE_FIELDS = frozenset(
    {"workdir", "data_dir", "num_steps", "log_every", "sample_every", "checkpoint_every",
     "eval_every", "eval_samples"})
# Fields that never enter a compiled function (the seed only makes the keys passed to it).
_NOT_COMPILED = RESUMABLE_FIELDS | {"seed"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyperparameters of one GAN run; every field is a flag of ``experiments.mnist``."""

    objective: str = "nonsaturating"
    arch: str = "thesis"
    prior: str = "uniform"
    dataset: str = "mnist"
    latent_dim: int = 96
    batch_size: int = 128
    disc_steps: int = 1
    num_steps: int = 3000
    learning_rate: float = 1e-3
    b1: float = 0.5
    b2: float = 0.999
    seed: int = 0
    workdir: Optional[str] = None
    data_dir: Optional[str] = None
    log_every: int = 100
    sample_every: int = 500
    checkpoint_every: int = 500
    eval_every: int = 500  # 0: no evaluation during training
    eval_samples: int = 2000

    def __post_init__(self):
        # Import here: the registries import jax/flax, the config itself should stay cheap.
        from gan_jax import losses, models, priors

        losses.get_objective(self.objective)
        models.get_architecture(self.arch)
        priors.get_prior(self.prior)
        for name in ("latent_dim", "batch_size", "disc_steps", "log_every", "sample_every",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 (0 turns evaluation off), got "
                             f"{self.eval_every}")
        if self.eval_samples < 100:
            raise ValueError(f"eval_samples must be >= 100, got {self.eval_samples}")
        if self.num_steps < 0:
            raise ValueError(f"num_steps must be >= 0, got {self.num_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("b1", "b2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def replace(self, **changes: Any) -> "Config":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def computation(self) -> "Config":
        """This config with the fields that do not change the compiled computation reset.

        Used as the static argument of compiled functions, so that runs differing only in
        seed, workdir, length or reporting share one compilation.
        """
        defaults = Config()
        return self.replace(**{name: getattr(defaults, name) for name in _NOT_COMPILED})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config fields {unknown}; valid: {sorted(known)}")
        return cls(**values)


def save_config(config: Config, path: str) -> None:
    """Writes ``config`` as indented JSON, atomically (write to a temp file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def load_config(path: str) -> Config:
    """Reads a config.json written by :func:`save_config`; errors name the file."""
    try:
        with open(path) as f:
            values = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no config.json here; is this a gan_jax workdir?") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt config.json ({e})") from None
    return Config.from_dict(values)


def check_resumable(saved: Config, requested: Config, path: str) -> None:
    """Raises if ``requested`` differs from the run saved at ``path`` in a field that matters."""
    diffs = {
        f.name: (getattr(saved, f.name), getattr(requested, f.name))
        for f in dataclasses.fields(Config)
        if f.name not in RESUMABLE_FIELDS and getattr(saved, f.name) != getattr(requested, f.name)
    }
    if diffs:
        lines = ", ".join(f"{k}: saved {a!r} vs requested {b!r}" for k, (a, b) in sorted(diffs.items()))
        raise ValueError(
            f"{path} belongs to a run with other settings ({lines}). Use a fresh --workdir, or "
            "rerun with the saved settings to resume.")
