"""Ctrl-C and SIGTERM during training: one line saying what was saved (exit 130 / 143), no
half-written orbax folder, and a resume that says where it picks up."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from jaxeq.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The CLI's guard around fit: the toy run of tests/train/toys.py, 8 steps per epoch, 'latest'
# every 2 steps; argv[2] slows the data so that the signal surely lands mid-run.
DRIVER = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    from jaxeq.cli import guarded
    from jaxeq.train import fit
    from tests.train import toys
    cfg = toys.toy_config(epochs=2, checkpoint_every_steps=2)
    sys.exit(guarded(lambda: fit(cfg, sys.argv[1], model=toys.TinyNet(),
                                 sources=toys.toy_sources(delay_s=float(sys.argv[2]))) and 0))
""")


def _start(workdir, delay_s: float):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(workdir), str(delay_s)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saved_steps(workdir):
    d = os.path.join(workdir, "checkpoints", "latest")
    return [int(n) for n in os.listdir(d) if n.isdigit()] if os.path.isdir(d) else []


def _tmp_folders(workdir):
    return [os.path.join(r, n) for r, dirs, _ in os.walk(workdir) for n in dirs
            if "orbax-checkpoint-tmp" in n]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_prints_one_line_leaves_no_tmp_and_resumes(tmp_path, sig, code):
    work = tmp_path / "w"
    victim = _start(work, delay_s=0.03)
    try:
        deadline = time.time() + 150
        while not _saved_steps(work):
            assert victim.poll() is None and time.time() < deadline, victim.communicate()
            time.sleep(0.02)
        victim.send_signal(sig)
        _, err = victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == code, err[-3000:]
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err[-3000:]
    saved = max(_saved_steps(work))
    assert lines[-1].startswith("interrupted at step ")
    assert f"saved: {os.path.join(os.path.abspath(work), 'checkpoints', 'latest', str(saved))}" \
        in lines[-1] and "run the same command again to resume" in lines[-1], lines[-1]
    assert _tmp_folders(work) == []
    if sig != signal.SIGTERM:
        return
    resumed = _start(work, delay_s=0.0)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resumed from step {saved} (epoch {saved // 8}, batch {saved % 8})" in err
    assert max(_saved_steps(work)) == 16 and _tmp_folders(work) == []


def test_hold_interrupts_delivers_the_signal_after_the_block():
    # start from the handler of a plain Python process: a test runner's worker may have
    # another (an ignored SIGINT would swallow the delivered signal)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with checkpoint.hold_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler has run by now: the signal is held, not raised
                done.append(True)
        assert done == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
