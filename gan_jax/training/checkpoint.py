"""Whole-state checkpoints with orbax, and clear errors when they are missing or corrupt.

Saves are synchronous and atomic: orbax writes a step into a temporary directory and renames
it into place only when complete, so a run killed at any moment (SIGKILL included) leaves
either a whole checkpoint or a temporary directory that is ignored and cleaned up on the next
start. Restores go into an abstract target from :func:`gan_jax.games.classic.abstract_state`, so the
result is a :class:`~gan_jax.games.classic.GANState` with the right dtypes, not raw dicts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class _QuietOrbax(logging.Filter):
    """Drops orbax's INFO chatter (dozens of lines per save); its warnings still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


# orbax logs through absl, i.e. the standard logger named "absl".
logging.getLogger("absl").addFilter(_QuietOrbax())


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable; the message names its path."""


def _placed_on_this_host(target: Any) -> Any:
    """``target`` with every abstract leaf that names no sharding placed on this process's
    first device. Without it orbax would restore each array with the sharding it was saved
    with, which fails for a checkpoint of another job (a multi-host run sampled on a laptop:
    "Topology mismatch")."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def place(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct) and leaf.sharding is None:
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device)
        return leaf

    return jax.tree.map(place, target)


class Checkpointer:
    """A directory of step-numbered checkpoints of one run.

    Args:
      directory: where the checkpoints live (created if missing unless ``read_only``).
      max_to_keep: how many most recent checkpoints to keep.
      read_only: open for restoring only (sampling); never creates or deletes anything.
    """

    def __init__(self, directory: str, max_to_keep: int = 3, read_only: bool = False):
        self.directory = os.path.abspath(directory)
        if read_only and not os.path.isdir(self.directory):
            raise CheckpointError(f"{self.directory}: checkpoint directory not found")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: Any) -> None:
        """Writes ``state`` as checkpoint ``step`` and returns once it is complete on disk."""
        if step in self._manager.all_steps():
            return  # Already saved (e.g. right after a resume): identical by construction.
        self._manager.save(step, args=ocp.args.StandardSave(state))
        self._manager.wait_until_finished()

    def restore(self, target: Any, step: Optional[int] = None) -> Any:
        """Restores checkpoint ``step`` (default: latest) into the structure of ``target``.

        Raises:
          CheckpointError: no checkpoint exists, or the one asked for cannot be read.
        """
        if step is None:
            step = self.latest_step()
            if step is None:
                raise CheckpointError(f"{self.directory}: no complete checkpoint found")
        elif step not in self._manager.all_steps():
            raise CheckpointError(
                f"{self.path(step)}: no such checkpoint; available steps: {self.all_steps()}")
        try:
            return self._manager.restore(
                step, args=ocp.args.StandardRestore(_placed_on_this_host(target)))
        except Exception as e:  # orbax/tensorstore raise many types; name the file instead.
            layout = self._layout_difference(step, target)
            if layout:
                raise CheckpointError(f"{self.path(step)}: {layout}") from e
            raise CheckpointError(
                f"{self.path(step)}: checkpoint is corrupt or does not match this model "
                f"({type(e).__name__}: {str(e)[:500]})") from e

    def _layout_difference(self, step: int, target: Any) -> str:
        """Names the state fields a checkpoint lacks or has beyond ``target``'s, or ''."""
        if not dataclasses.is_dataclass(target):
            return ""
        try:
            saved = set(self._manager.item_metadata(step).keys())
        except Exception:  # unreadable metadata: reported as corrupt by the caller
            return ""
        wanted = {f.name for f in dataclasses.fields(target)}
        missing, extra = sorted(wanted - saved), sorted(saved - wanted)
        if not missing and not extra:
            return ""
        hint = ""
        if missing == ["g_ema_params"] and not extra:
            hint = (" Checkpoints written before gan_jax 0.2 (the game abstraction, which added "
                    "the averaged generator g_ema_params to the state) cannot be resumed or "
                    "sampled by this version; retrain in a fresh workdir, or use gan_jax 0.1.")
        parts = ([f"lacks the fields {missing}"] if missing else []) + (
            [f"has fields {extra} that {type(target).__name__} does not"] if extra else [])
        return (f"the checkpoint holds another game state than this run's "
                f"{type(target).__name__}: it {' and '.join(parts)}." + hint)

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
