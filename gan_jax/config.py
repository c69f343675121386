"""The one frozen configuration object of a run, mirrored one-to-one by the absl flags.

Settings left as None are filled in when the Config is made, from (lowest to highest priority):

0. the game (``game``; :data:`gan_jax.games.base.GAME_DEFAULTS`): the classic GAN takes
   objective ``nonsaturating`` and architecture ``thesis``; BEGAN its own networks and
   settings (:mod:`gan_jax.games.began`);
1. the thesis GAN of seed 000 (SPEC 3A): Adam(lr 1e-3, betas 0.5 / 0.999), k = 1
   discriminator step per generator step, minibatches of 128, 96-d z
   (:data:`BASE_DEFAULTS`);
2. the architecture's paper (:attr:`gan_jax.models.architectures.Architecture.defaults`; e.g. DCGAN: Adam
   lr 2e-4, 100-d z);
3. the objective's paper (:attr:`gan_jax.games.losses.Objective.defaults`; e.g. WGAN: RMSProp
   lr 5e-5, batch 64, n_critic 5, clip 0.01);
4. what the caller (or a flag) sets explicitly.

The Config then holds only effective values: config.json records exactly what ran, and
resuming compares effective values. ``replace`` re-applies the defaults to the fields that
were never set explicitly, so ``Config().replace(objective="wgan")`` gets WGAN's settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from typing import Any, Optional

# Fields that may differ between a run and its resumption: where things live, how long to
# train and how often to report. Everything else defines the computation and must match.
RESUMABLE_FIELDS = frozenset(
    {"workdir", "data_dir", "num_steps", "log_every", "sample_every", "checkpoint_every",
     "eval_every", "eval_samples", "steps_per_call"})
# Fields that never enter a compiled function (the seed only makes the keys passed to it).
_NOT_COMPILED = RESUMABLE_FIELDS | {"seed"}

OPTIMIZERS = ("adam", "rmsprop")
COMPUTE_DTYPES = ("float32", "bfloat16")
# Level 1 of the defaults (the thesis GAN); see the module docstring.
BASE_DEFAULTS = {"latent_dim": 96, "batch_size": 128, "disc_steps": 1, "optimizer": "adam",
                 "learning_rate": 1e-3, "b1": 0.5, "b2": 0.999, "d_activation": "leaky_relu"}
# Settings that exist only for some objectives / optimisers / games (None elsewhere).
_OBJECTIVE_ONLY = {"clip": "weight_clipping", "gp_weight": "gradient_penalty"}
_ADAM_ONLY = ("b1", "b2")
_GAME_ONLY = {"gamma": "began", "lambda_k": "began", "lr_halve_every": "began",
              "lr_floor": "began"}
D_ACTIVATIONS = ("leaky_relu", "relu")
# What a game without objectives (BEGAN: its own losses) contributes to the checks.
_NO_OBJECTIVE = types.SimpleNamespace(defaults={}, weight_clipping=False, gradient_penalty=False)
DEFAULTED_FIELDS = (("objective", "arch") + tuple(BASE_DEFAULTS) + tuple(_OBJECTIVE_ONLY)
                    + tuple(_GAME_ONLY))


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyperparameters of one GAN run; every field is a flag of ``experiments.mnist``.

    None in a field of :data:`DEFAULTED_FIELDS` means "the default for this objective and
    architecture" (module docstring); after construction every such field holds its value.
    """

    # The game (gan_jax.games): "classic" (Goodfellow et al.'s, with every objective) or "began".
    game: str = "classic"
    objective: Optional[str] = None  # classic: "nonsaturating"; None for games without one
    arch: Optional[str] = None  # the game's default (classic: "thesis")
    prior: str = "uniform"
    dataset: str = "mnist"
    latent_dim: Optional[int] = None
    batch_size: Optional[int] = None
    disc_steps: Optional[int] = None
    num_steps: int = 3000
    optimizer: Optional[str] = None
    learning_rate: Optional[float] = None
    b1: Optional[float] = None
    b2: Optional[float] = None
    clip: Optional[float] = None
    gp_weight: Optional[float] = None
    wgan_warmup: bool = False
    # "leaky_relu" | "relu" in D, where the architecture offers both (seed 001's ablation);
    # None after construction for architectures whose D has no such choice (MLPs).
    d_activation: Optional[str] = None
    # Dropout rate after each activation of D, for the DCGANs (seed 003's Keras variant; 0.4
    # there); 0: none.
    d_dropout: float = 0.0
    # Class-conditional G(z, y) and D(x, y) (gan_jax.models.conditional), for labelled datasets.
    conditional: bool = False
    # Generator weight averaging (gan_jax.games.ema): decay beta in [0, 1), 0 is off; with the
    # warm-up beta_t = min(beta, (1 + t) / (10 + t)).
    ema_decay: float = 0.0
    ema_warmup: bool = True
    # BEGAN (Berthelot et al. 2017): diversity ratio gamma, k's learning rate lambda_k, and the
    # learning rate halved every lr_halve_every steps down to lr_floor.
    gamma: Optional[float] = None
    lambda_k: Optional[float] = None
    lr_halve_every: Optional[int] = None
    lr_floor: Optional[float] = None
    seed: int = 0
    workdir: Optional[str] = None
    data_dir: Optional[str] = None
    log_every: int = 100
    sample_every: int = 500
    checkpoint_every: int = 500
    eval_every: int = 500  # 0: no evaluation during training
    eval_samples: int = 2000
    # Training steps per compiled call (a lax.scan; bitwise the same run). The reporting
    # intervals must be multiples of it.
    steps_per_call: int = 1
    # The dtype of the training passes' arithmetic; parameters, optimiser state and BatchNorm
    # statistics stay float32 ("bfloat16": mixed precision).
    compute_dtype: str = "float32"
    # Names of the defaulted fields the caller set (not part of equality, hash or JSON).
    explicit: frozenset = dataclasses.field(default=frozenset(), init=False, compare=False,
                                            repr=False)

    def __post_init__(self):
        # Import here: the registries import jax/flax, the config itself should stay cheap.
        from gan_jax.games import losses, priors
        from gan_jax.games import base as games
        from gan_jax.models import architectures as models

        game_defaults = games.game_defaults(self.game)
        explicit = frozenset(name for name in DEFAULTED_FIELDS if getattr(self, name) is not None)
        object.__setattr__(self, "explicit", explicit)
        for name in ("objective", "arch"):
            if name not in explicit:
                object.__setattr__(self, name, game_defaults.get(name))
        if self.objective is None and "objective" in explicit:
            raise ValueError(f"game {self.game!r} has no objective setting")
        if self.objective is not None and "objective" not in game_defaults:
            users = sorted(n for n, d in games.GAME_DEFAULTS.items() if "objective" in d)
            raise ValueError(f"objective applies to game {users} only, not {self.game!r} "
                             "(which has its own losses)")
        objective = (losses.get_objective(self.objective) if self.objective
                     else _NO_OBJECTIVE)
        arch = models.get_architecture(self.arch)
        if arch.game != self.game:
            valid = sorted(n for n, a in models.ARCHITECTURES.items() if a.game == self.game)
            raise ValueError(f"--arch={self.arch} is an architecture of game {arch.game!r}; "
                             f"game {self.game!r} takes {valid}")
        priors.get_prior(self.prior)
        from gan_jax.data import DATASET_NAMES
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"Unknown dataset {self.dataset!r}; valid: {list(DATASET_NAMES)}")
        for name, flag in _OBJECTIVE_ONLY.items():
            if name in explicit and not getattr(objective, flag):
                users = sorted(n for n, o in losses.OBJECTIVES.items() if getattr(o, flag))
                raise ValueError(f"{name} applies to objective {users} only, not "
                                 f"{self.objective!r}")
        for name, game in _GAME_ONLY.items():
            if name in explicit and self.game != game:
                raise ValueError(f"{name} applies to game {game!r} only, not {self.game!r}")
        defaults = {**BASE_DEFAULTS, **game_defaults, **arch.defaults, **objective.defaults}
        for name in DEFAULTED_FIELDS[2:]:
            if name not in explicit:
                object.__setattr__(self, name, defaults.get(name))
        if arch.d_activations:
            if self.d_activation not in arch.d_activations:
                raise ValueError(f"Unknown d_activation {self.d_activation!r} for --arch="
                                 f"{self.arch}; valid: {list(arch.d_activations)}")
        elif "d_activation" in explicit:
            offering = sorted(n for n, a in models.ARCHITECTURES.items() if a.d_activations)
            raise ValueError(f"d_activation is fixed by --arch={self.arch}; it can be chosen for "
                             f"{offering}")
        else:
            object.__setattr__(self, "d_activation", None)
        if self.d_dropout and not arch.d_dropout:
            offering = sorted(n for n, a in models.ARCHITECTURES.items() if a.d_dropout)
            raise ValueError(f"d_dropout is not offered by --arch={self.arch}; it is by "
                             f"{offering}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; valid: {list(OPTIMIZERS)}")
        if self.optimizer != "adam":
            given = sorted(set(_ADAM_ONLY) & explicit)
            if given:
                raise ValueError(f"{given} are Adam's betas; optimizer {self.optimizer!r} "
                                 "does not use them")
            for name in _ADAM_ONLY:
                object.__setattr__(self, name, None)
        self._validate()

    def _validate(self) -> None:
        for name in ("latent_dim", "batch_size", "disc_steps", "log_every", "sample_every",
                     "checkpoint_every", "steps_per_call"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("log_every", "sample_every", "checkpoint_every", "eval_every"):
            if getattr(self, name) % self.steps_per_call:
                raise ValueError(f"{name}={getattr(self, name)} must be a multiple of "
                                 f"steps_per_call={self.steps_per_call} (outputs are written "
                                 "between compiled calls)")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"Unknown compute_dtype {self.compute_dtype!r}; valid: "
                             f"{list(COMPUTE_DTYPES)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 (0 turns evaluation off), got "
                             f"{self.eval_every}")
        if self.eval_samples < 100:
            raise ValueError(f"eval_samples must be >= 100, got {self.eval_samples}")
        if self.num_steps < 0:
            raise ValueError(f"num_steps must be >= 0, got {self.num_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in _ADAM_ONLY:
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 <= self.d_dropout < 1.0:
            raise ValueError(f"d_dropout must be in [0, 1), got {self.d_dropout}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if self.gp_weight is not None and not self.gp_weight >= 0:
            raise ValueError(f"gp_weight must be >= 0, got {self.gp_weight}")
        if self.conditional:
            from gan_jax.models.conditional import num_classes_for
            num_classes_for(self.dataset)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 turns averaging off), got "
                             f"{self.ema_decay}")
        # gamma > 1 is allowed: on MNIST, L1 reconstruction error grows with a digit's ink, so
        # a G of easy thin "1"s meets gamma <= 1 at a small k (~0.07; docs/began.md).
        if self.gamma is not None and not (math.isfinite(self.gamma) and self.gamma > 0.0):
            raise ValueError(f"gamma must be a finite number > 0, got {self.gamma}")
        if self.lambda_k is not None and not self.lambda_k >= 0.0:
            raise ValueError(f"lambda_k must be >= 0, got {self.lambda_k}")
        if self.lr_halve_every is not None and self.lr_halve_every < 1:
            raise ValueError(f"lr_halve_every must be >= 1, got {self.lr_halve_every}")
        if self.lr_floor is not None and not 0.0 <= self.lr_floor <= self.learning_rate:
            raise ValueError(f"lr_floor must be in [0, learning_rate = {self.learning_rate}], "
                             f"got {self.lr_floor}")
        if self.game == "began" and self.optimizer != "adam":
            raise ValueError("game 'began' trains with Adam (optimizer 'adam')")
        if self.conditional and self.game != "classic":
            raise ValueError(f"conditional applies to game 'classic' only, not {self.game!r}")
        if self.wgan_warmup and self.objective != "wgan":
            raise ValueError("wgan_warmup applies to objective 'wgan' only")

    def replace(self, **changes: Any) -> "Config":
        """A copy with ``changes`` applied; defaults re-derived for fields never set."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        for name in DEFAULTED_FIELDS:
            if name not in self.explicit:
                values[name] = None
        return Config(**{**values, **changes})

    def computation(self) -> "Config":
        """This config with the fields that do not change the compiled computation reset.

        Used as the static argument of compiled functions, so that runs differing only in
        seed, workdir, length or reporting share one compilation.
        """
        defaults = Config()
        return self.replace(**{name: getattr(defaults, name) for name in _NOT_COMPILED})

    def to_dict(self) -> dict[str, Any]:
        """The effective values of every field (what config.json records)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls) if f.init}
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
        if f.init and f.name not in RESUMABLE_FIELDS and getattr(saved, f.name) != getattr(requested, f.name)
    }
    if diffs:
        lines = ", ".join(f"{k}: saved {a!r} vs requested {b!r}" for k, (a, b) in sorted(diffs.items()))
        raise ValueError(
            f"{path} belongs to a run with other settings ({lines}). Use a fresh --workdir, or "
            "rerun with the saved settings to resume.")
