import subprocess
import sys

from streams.local.processes import stop_process

CHILD = (
    "import signal, sys, time\n"
    "if sys.argv[1] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _start(kind: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # handler installed before we signal
    proc.stdout.close()
    return proc


def test_a_child_that_honours_sigterm_stops_gracefully() -> None:
    proc = _start("polite")
    assert stop_process(proc, grace_s=10) is True
    assert proc.returncode == -15


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    proc = _start("stubborn")
    assert stop_process(proc, grace_s=0.5) is False
    assert proc.returncode == -9


def test_an_exited_child_is_left_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert stop_process(proc, grace_s=1) is True
    assert proc.returncode == 0
