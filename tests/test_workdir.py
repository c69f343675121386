"""One run per workdir (the lock), and unusable paths refused before anything runs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import gan_jax
from gan_jax import data as data_lib
from gan_jax.training.workdir import (WorkdirInUse, WorkdirLock, check_output_file,
                                      check_writable_folder)

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from gan_jax.training.workdir import WorkdirLock
with WorkdirLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_lock_names_the_holder_and_the_lock_is_free_after_it(tmp_path):
    with WorkdirLock(str(tmp_path)):
        with pytest.raises(WorkdirInUse, match=(
                f"{tmp_path} is in use by another training run \\(process {os.getpid()} on "
                f"{socket.gethostname()}, started 20")):
            WorkdirLock(str(tmp_path)).__enter__()
    with WorkdirLock(str(tmp_path)):  # released on exit
        pass
    with WorkdirLock(str(tmp_path), enabled=False), WorkdirLock(str(tmp_path)):
        pass  # a disabled lock (processes other than 0) takes nothing


def test_a_sigkilled_holder_does_not_leave_the_workdir_locked(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirInUse, match=f"process {proc.pid} on"):
            WorkdirLock(str(tmp_path)).__enter__()
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / ".lock").exists()  # the file stays; the kernel dropped the flock
    with WorkdirLock(str(tmp_path)):
        pass


def test_train_refuses_a_workdir_in_use_before_anything_runs(tmp_path, tiny_config):
    config = tiny_config.replace(workdir=str(tmp_path / "w"))
    os.makedirs(config.workdir)
    with WorkdirLock(config.workdir):
        with pytest.raises(WorkdirInUse, match=f"process {os.getpid()}"):
            gan_jax.train(config)
    assert os.listdir(config.workdir) == [".lock"]  # no config.json, samples or checkpoints


def test_unusable_folders_are_refused_with_the_reason(tmp_path, tiny_config):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=f"workdir {a_file} is a file, not a folder"):
        gan_jax.train(tiny_config.replace(workdir=str(a_file)))
    with pytest.raises(ValueError, match=f"workdir {a_file}/run cannot be created: {a_file} is "
                                         "a file"):
        gan_jax.train(tiny_config.replace(workdir=str(a_file / "run")))
    assert check_writable_folder(str(tmp_path / "new" / "deeper"), "x") == str(
        tmp_path / "new" / "deeper")
    with pytest.raises(ValueError, match=f"--out {tmp_path} is a folder, not a file"):
        check_output_file(str(tmp_path), "--out")
    with pytest.raises(ValueError, match=f"the folder of --npz {a_file} is a file"):
        check_output_file(str(a_file / "s.npz"), "--npz")
    with pytest.raises(data_lib.DataError, match=f"{a_file}: is a file, not a data folder"):
        data_lib.load_dataset("mnist", "train", str(a_file))
    with pytest.raises(data_lib.DataError, match=f"{a_file}: is a file, not a tfds data folder"):
        data_lib.load_dataset("cifar10", "train", str(a_file))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match=f"workdir {ro}/run: {ro} is not writable"):
            check_writable_folder(str(ro / "run"), "workdir")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("program,source", [("experiments.sample", "--workdir"),
                                             ("experiments.evaluate", "--samples")])
def test_programs_refuse_an_unusable_output_before_reading_anything(tmp_path, program, source):
    """--out naming a folder fails at once (the run or samples named do not even exist)."""
    result = subprocess.run([sys.executable, "-m", program, f"{source}={tmp_path / 'nowhere'}",
                             f"--out={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"error: --out {tmp_path} is a folder, not a file" in result.stderr
