"""Child processes of the local tools: port checks, readiness waits, and a group that starts and stops them.

``ProcessGroup`` runs each child in its own session and stops them all, whatever stage a stop signal
(SIGTERM, SIGINT, SIGHUP) arrives at: the signal is recorded and acted on at the next wait, never raised
inside ``Popen`` (logging's at-fork hook swallows exceptions there). Imported by the scripts beside it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(url: str, name: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None,
             group: ProcessGroup | None = None) -> None:  # fmt: skip
    """Poll ``url`` until it answers; stop with a message if ``process`` dies or ``timeout`` passes, and with
    :class:`Interrupted` once a stop signal that ``group`` records has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if group is not None:
                group.check()  # the signal may have reached it too (a service manager signals the whole tree)
            where = f"its log, {log}" if log is not None else "its output above"
            raise SystemExit(f"{name} exited with code {process.returncode}; see {where}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if group is None:
                time.sleep(0.3)
            else:
                group.pause(0.3)
    raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f} s")


def _default_sigint() -> None:
    # Even if our SIGINT is ignored (a background job's is), children must take the Ctrl-C they are sent.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@functools.cache
def _prctl() -> Any:
    """libc's ``prctl`` on Linux, else None; looked up in the parent, so that a child only calls it."""
    with suppress(OSError, AttributeError):
        return ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
    return None


def _die_with_parent(parent: int, prctl: Any) -> None:
    """``preexec_fn``: the child takes Ctrl-C, and Linux SIGKILLs it when ``parent`` dies (even by SIGKILL)."""
    _default_sigint()
    if prctl is not None:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that call: no signal will come
            os._exit(1)


class Interrupted(Exception):
    """A stop signal recorded by :meth:`ProcessGroup.stop_on_signals`, raised where the script can act on it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ProcessGroup:
    """Child processes, each in its own session, stopped together.

    After :meth:`stop_on_signals`, a stop signal is only recorded; the group's waits then raise :class:`Interrupted`.
    A handler that raised at once could fire inside ``subprocess.Popen``, in logging's at-fork hook, which swallows
    the exception ("Exception ignored in ... _releaseLock"): the signal was lost and the children ran on.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.jobs: set[int] = set()  # pids of processes expected to end: their exit is no failure
        self.signum: int | None = None

    def stop_on_signals(self) -> None:
        """Record SIGTERM, SIGINT (Ctrl-C) and SIGHUP (the terminal closed) instead of dying of them. SIGINT is
        caught even if inherited as ignored (a background job's is); an ignored SIGHUP (``nohup``) stays ignored."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, self._record)

    def _record(self, signum: int, frame: object) -> None:
        # Only an assignment: this runs between any two bytecodes of the main thread, inside Popen too.
        self.signum = self.signum or signum

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop signal has arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``; raise :class:`Interrupted` within 0.1 s of a stop signal."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        self.check()

    def start(self, *command: str | Path, cwd: Path = ROOT, log: Path | None = None,
              env: Mapping[str, str] | None = None, capture: bool = False,
              job: bool = False) -> subprocess.Popen[bytes]:  # fmt: skip
        """Start ``command`` (raises :class:`Interrupted` instead after a stop signal). Its output goes to ``log``
        (appended), to pipes with ``capture``, else to this terminal. A ``job`` is expected to end."""
        self.check()
        out: IO[bytes] | None = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        # Python code in the child before exec is safe only while this process has one thread (another may hold a
        # lock the child would wait for forever): demo.py starts every child from its only thread.
        setup: Callable[[], None] | None = None  # exec resets a caught SIGINT to the default, not an ignored one
        if threading.active_count() == 1:
            setup = functools.partial(_die_with_parent, os.getpid(), _prctl())
        elif signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            setup = _default_sigint
        pipe = subprocess.PIPE if capture else None
        process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=self.env if env is None else dict(env),
                                   start_new_session=True, preexec_fn=setup, stdout=out or pipe,
                                   stderr=subprocess.STDOUT if out else pipe)  # fmt: skip
        if out is not None:
            out.close()  # the child holds its own descriptor
        self.processes.append(process)
        if job:
            self.jobs.add(process.pid)
        return process

    def run(self, *command: str | Path, env: Mapping[str, str] | None = None, capture: bool = False,
            timeout: float | None = None) -> str:  # fmt: skip
        """``subprocess.run(check=True, timeout=timeout)`` in this group: a stop signal raises :class:`Interrupted`
        at once, and :meth:`stop` ends the process. Returns its standard output with ``capture``."""
        process = self.start(*command, env=env, capture=capture, job=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                out, err = process.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                self.check()
                if deadline is not None and time.monotonic() > deadline:
                    _signal_group(process.pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(process.args, timeout or 0.0) from None
        self.check()  # a stop signal that reached the process too is no failure of its own
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, process.args, out, err)
        return (out or b"").decode()

    def wait_while_running(self, tick: Callable[[], object] | None = None) -> None:
        """Return when a process other than a job exits (the caller treats that as a failure), calling ``tick``
        every half second meanwhile; raise :class:`Interrupted` on a stop signal."""
        while all(p.poll() is None for p in self.processes if p.pid not in self.jobs):
            if tick is not None:
                tick()
            self.pause(0.5)
        self.check()

    def stop(self, first_signal: int = signal.SIGTERM, timeout: float = 10.0) -> list[subprocess.Popen[bytes]]:
        """Signal every process group, wait up to ``timeout`` in all, then SIGKILL stragglers; returns those."""
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process.pid, first_signal)
        killed, deadline = [], time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
                killed.append(process)
        return killed


def _signal_group(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):  # its leader exited since we looked, and the group is empty
        os.killpg(pid, signum)
