"""The parallel-lines example (Arjovsky et al. 2017, example 1; SPEC 2, seed 002).

P0 = law of (0, Z) and P_theta = law of (theta, Z), Z ~ U[0, 1]. Then JS(P0, P_theta) = log 2
for theta != 0 (0 at theta = 0) and W(P0, P_theta) = |theta|: JS is flat, W is not.

1. *Divergences through trained networks*, for theta on a grid (``parallel_lines`` generator
   frozen at theta, D trained alone by :func:`gan_jax.games.classic_updates.discriminator_update` on fresh P0
   draws; all thetas x seeds in one program):

   * JS estimate = (V(D, G) + log 4) / 2 with a BCE discriminator (V by Monte Carlo on 16384
     fresh real and fake points); a lower bound of JS for any D, equal at D*.
   * W estimate from a WGAN-GP critic f (Gulrajani et al. 2017) trained alone. The critic
     maximises gap(f) - lambda E(||grad f|| - 1)^2 with gap(f) = E f(x) - E f(G(z)); on this
     example the maximiser is f = -k sign(theta) x_1 + c with k = 1 + |theta| / (2 lambda), so
     the raw gap is |theta| + theta^2 / (2 lambda), not W (5% high at theta = 1, lambda = 10).
     We report W = gap / k, with the slope k measured as the mean ||grad_x f|| on the
     real-fake segments (gap / Lip(f) <= W for any f, with equality at the optimum by
     Kantorovich-Rubinstein), and the raw gap beside it. A weight-clipped critic would
     estimate K W for an unknown K; it is not used for the estimate.
   * gradients in theta: finite differences of both estimated curves, and the gradient that
     each generator loss actually sends to theta through the trained network
     (d/dtheta of the library's generator loss at fixed D).

2. *Training theta itself* with each objective: the ``parallel_lines`` architecture and the
   library train step, every objective with its library defaults (k = 1 for minimax and
   nonsaturating; n_critic = 5 with RMSProp + clipping or Adam + penalty for the WGANs) but one
   shared learning rate; theta starts at 1.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.games import losses
from gan_jax.training import sweep
from gan_jax.theory import plots as theory_plots, train as theory_train
from gan_jax.config import Config
from gan_jax.games.classic import build_gan

LOG2 = math.log(2.0)
THETAS = np.array([-1.0, -0.8, -0.6, -0.4, -0.2, -0.05, 0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0])
QUICK_THETAS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
# D alone: Adam (toy defaults), learning rate cosine-decayed to 1%; measured on 11 thetas x 8
# seeds: 500 updates of batch 128 give both estimates to ~1e-3 (2000 of 256: the same).
JS_CONFIG = Config(arch="parallel_lines", objective="nonsaturating", learning_rate=5e-3,
                   batch_size=128)
W_CONFIG = Config(arch="parallel_lines", objective="wgan-gp", learning_rate=2e-3,
                  batch_size=128)
FIT_STEPS, QUICK_FIT_STEPS = 500, 300
EVAL_POINTS = 16384
TRAIN_OBJECTIVES = ("minimax", "nonsaturating", "wgan", "wgan-gp")
# One learning rate for every objective (each keeps its other library defaults: k = 1 for
# minimax / nonsaturating, n_critic = 5 and RMSProp + clipping or Adam + penalty for the
# WGANs). The WGAN papers' 5e-5 / 1e-4 would need ~10^4 steps to move theta by 1.
TRAIN_LR = 5e-3
TRAIN_STEPS, QUICK_TRAIN_STEPS = 500, 250
NUM_RECORDS = 50
TRAINING_SET = 1024
NEAR_ZERO = 0.1


def sample_p0(params, key: jax.Array, num: int) -> jax.Array:
    """``num`` draws ``[num, 2]`` of P0 = (0, Z), Z ~ U[0, 1] (``params`` unused)."""
    del params
    return jnp.stack([jnp.zeros((num,)), jax.random.uniform(key, (num,))], axis=1)


def _evaluate(config: Config, states, key: jax.Array) -> dict[str, np.ndarray]:
    """Per run: D's mean log-probabilities / critic gap on fresh points, and d loss / d theta
    of the generator losses through the trained network (``[R]`` arrays)."""
    gan = build_gan(config)
    real_key, z_key = jax.random.split(key)
    real = sample_p0(None, real_key, EVAL_POINTS)
    z = gan.sample_z(z_key, EVAL_POINTS)
    names = ("minimax", "nonsaturating") if gan.objective.probabilistic else ("wgan",)

    def one(state):
        d = lambda x: gan.discriminator.apply({"params": state.d_params}, x)  # noqa: E731
        fake_logits = lambda g: d(gan.generator.apply({"params": g}, z))  # noqa: E731
        real_logits, fake = d(real), fake_logits(state.g_params)
        if gan.objective.probabilistic:
            # V = E log D(x) + E log(1 - D(G(z))), the negated BCE discriminator loss.
            out = {"value": -losses.bce_discriminator_loss(real_logits=real_logits,
                                                           fake_logits=fake)}
        else:
            out = {"value": jnp.mean(real_logits) - jnp.mean(fake)}
            # ||grad_x f|| on the segments between real and fake points (where WGAN-GP's
            # penalty acts and where the optimal critic's slope matters).
            fake_x = gan.generator.apply({"params": state.g_params}, z)
            eps = jax.random.uniform(jax.random.fold_in(key, 1), (EVAL_POINTS, 1))
            xhat = eps * real + (1 - eps) * fake_x
            grads = jax.grad(lambda x: jnp.sum(d(x)))(xhat)
            norms = jnp.sqrt(jnp.sum(grads ** 2, axis=1))
            out["grad_norm_max"], out["grad_norm_mean"] = jnp.max(norms), jnp.mean(norms)
        for name in names:
            loss = lambda g: losses.get_objective(name).generator_loss(  # noqa: E731
                fake_logits=fake_logits(g))
            out[f"grad_{name}"] = jax.grad(loss)(state.g_params)["theta"]
        return out

    return jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(states))


def _fit_over_thetas(config: Config, thetas: np.ndarray, seeds: Sequence[int], steps: int):
    runs = [(t, s) for t in range(len(thetas)) for s in seeds]
    states = sweep.create_states(config, [s for _, s in runs])
    states = states.replace(g_params={"theta": jnp.asarray([thetas[t] for t, _ in runs],
                                                           jnp.float32)})
    keys = theory_train.training_keys([s for _, s in runs], [t for t, _ in runs])
    states = theory_train.fit_discriminators(config, states, keys, jnp.zeros(len(runs)), steps,
                                             sample_real=sample_p0)
    out = _evaluate(config, states, jax.random.key(12345))
    return {k: v.reshape(len(thetas), len(seeds)) for k, v in out.items()}


def _train_theta(objective: str, seeds: Sequence[int], steps: int) -> dict:
    config = Config(arch="parallel_lines", objective=objective, learning_rate=TRAIN_LR)
    data = np.stack([np.zeros(TRAINING_SET),
                     np.random.default_rng(0).uniform(0, 1, TRAINING_SET)], 1)
    chunk = max(1, steps // NUM_RECORDS)
    states = sweep.create_states(config, seeds)
    theta0 = np.asarray(states.g_params["theta"])
    keys = sweep.train_keys(seeds)
    _, thetas, metrics = theory_train.train_runs(
        config, states, keys, jnp.asarray(data, jnp.float32), steps // chunk, chunk,
        lambda state, _: state.g_params["theta"])
    trajectory = np.concatenate([theta0[None], np.asarray(thetas)])  # [T, S]
    final = trajectory[-1]
    return {"steps": [0] + [chunk * (i + 1) for i in range(steps // chunk)],
            "trajectory": trajectory, "mean": float(final.mean()), "std": float(final.std()),
            "abs_mean": float(np.abs(final).mean()),
            "fraction_near_zero": float(np.mean(np.abs(final) < NEAR_ZERO)),
            "per_seed": final.tolist(), "config": config.to_dict(),
            # Mean D(G(z)) (sigmoid) or critic score that the last generator update saw.
            "final_g_d_fake": float(np.asarray(metrics["g_d_fake"])[-1].mean())}


def parallel_lines(seeds: Sequence[int], steps: Optional[int], quick: bool):
    """JS and W estimates over theta, their gradients, and theta trained by each objective.

    ``steps`` sets the theta-training length (Algorithm 1 iterations); the D-alone fits use
    ``FIT_STEPS`` (``QUICK_FIT_STEPS`` when quick).
    """
    thetas = QUICK_THETAS if quick else THETAS
    fit_steps = QUICK_FIT_STEPS if quick else FIT_STEPS
    train_steps = steps or (QUICK_TRAIN_STEPS if quick else TRAIN_STEPS)
    js_fit = _fit_over_thetas(JS_CONFIG, thetas, seeds, fit_steps)
    w_fit = _fit_over_thetas(W_CONFIG, thetas, seeds, fit_steps)
    js = (js_fit["value"] + 2 * LOG2) / 2  # [T, S]
    # The critic's gap over its slope on the real-fake segments (see module docstring).
    w = w_fit["value"] / w_fit["grad_norm_mean"]
    gp_weight = W_CONFIG.gp_weight
    mean = lambda a: a.mean(axis=1)  # noqa: E731
    std = lambda a: a.std(axis=1)  # noqa: E731
    generator_grads = {
        "minimax (through trained D)": js_fit["grad_minimax"],
        "nonsaturating (through trained D)": js_fit["grad_nonsaturating"],
        "wgan-gp (through trained critic)": w_fit["grad_wgan"]}
    trained = {objective: _train_theta(objective, seeds, train_steps)
               for objective in TRAIN_OBJECTIVES}
    nonzero = np.abs(thetas) > 0
    results = {
        "thetas": thetas, "js": mean(js), "js_std": std(js), "w": mean(w), "w_std": std(w),
        "js_true": np.where(nonzero, LOG2, 0.0), "w_true": np.abs(thetas),
        "js_grad_fd": np.gradient(mean(js), thetas), "w_grad_fd": np.gradient(mean(w), thetas),
        "generator_grad": {k: {"mean": mean(v), "std": std(v)}
                           for k, v in generator_grads.items()},
        "js_max_error_nonzero_theta": float(np.max(np.abs(mean(js)[nonzero] - LOG2))),
        "w_max_error": float(np.max(np.abs(mean(w) - np.abs(thetas)))),
        "w_critic_gap": mean(w_fit["value"]), "w_critic_gap_std": std(w_fit["value"]),
        "w_critic_gap_optimum": np.abs(thetas) + thetas ** 2 / (2 * gp_weight),
        "w_lower_bound": mean(w_fit["value"] / w_fit["grad_norm_max"]),
        "critic_grad_norm_mean": mean(w_fit["grad_norm_mean"]),
        "w_method": ("w = (E f(x) - E f(G(z))) / mean ||grad f|| on real-fake segments, f a "
                     "WGAN-GP critic trained alone; the raw gap (w_critic_gap) maximises "
                     "gap - lambda (slope - 1)^2, whose optimum on this family is |theta| + "
                     "theta^2 / (2 lambda) (w_critic_gap_optimum); gap / max norm "
                     "(w_lower_bound) is <= W by Kantorovich-Rubinstein"),
        "theta_final": {k: {key: v[key] for key in ("mean", "std", "abs_mean",
                                                    "fraction_near_zero", "per_seed",
                                                    "final_g_d_fake")}
                        for k, v in trained.items()},
        "theta_training": {k: {"config": v["config"], "steps": train_steps}
                           for k, v in trained.items()},
        "d_fit": {"js_config": JS_CONFIG.to_dict(), "w_config": W_CONFIG.to_dict(),
                  "d_updates": fit_steps, "eval_points": EVAL_POINTS,
                  "lr_schedule": f"cosine to {theory_train.FINAL_LR_FRACTION:g} of the "
                                 "learning rate"},
        "near_zero": NEAR_ZERO,
    }
    figures = {"parallel_lines.png": functools.partial(
        theory_plots.parallel_lines_figure, thetas, js, w, generator_grads,
        {k: (v["steps"], v["trajectory"]) for k, v in trained.items()})}
    return results, figures
