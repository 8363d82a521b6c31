"""Run code under a memory and time cap, one fresh child process per case, without paying the imports each time.

A *runner* is a subprocess that imports tac_ecg_hf (and torch, transformers, peft, wfdb, scipy) once and then serves
requests read from stdin, one JSON line each. For every request it forks a child that sets ``RLIMIT_AS`` (the address
space cap) and runs the case: ``tac_ecg_hf.cli.main(argv)`` (``{"cli": [...]}``) or a function of
:mod:`support.fuzz_cases` (``{"call": "name", "kwargs": {...}}``). The runner kills a child that runs past its time
limit and answers with one JSON line: the exit code, stdout, stderr, wall time, the child's peak resident memory and
whether it was killed. A blow-up (MemoryError, a hang, an OOM kill) thus fails one case of a test, never the machine
or the rest of the suite.

    with CappedRunner() as runner:
        result = runner.cli(["predict", "A0001.hea", "--task", "cpsc2018"])
        assert result.exit_code == 2 and len(result.stderr_lines) == 1

Children are forked from the runner, so they share its imports; the runner itself runs no torch operation (no thread
pool exists yet when it forks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: the caps of issue 10: 6 GB of address space and 90 s per case
ADDRESS_SPACE_CAP = 6 * 1024**3
TIME_LIMIT = 90.0
TESTS_DIR = Path(__file__).resolve().parents[1]


@dataclass
class CaseResult:
    exit_code: int | None  # None when the child was killed (time limit or signal)
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float
    timed_out: bool
    signal: int | None = None
    value: object = None  # what a "call" case returned (JSON)

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    def describe(self) -> str:
        return (
            f"exit {self.exit_code} signal {self.signal} timed_out={self.timed_out} {self.seconds:.1f} s "
            f"{self.max_rss_mb:.0f} MB\nstdout: {self.stdout[-1500:]}\nstderr: {self.stderr[-3000:]}"
        )


class CappedRunner:
    """The runner subprocess (see the module docstring). Use as a context manager, or call :meth:`close`."""

    def __init__(
        self, address_space: int = ADDRESS_SPACE_CAP, time_limit: float = TIME_LIMIT, env: dict | None = None
    ):
        self.address_space = address_space
        self.time_limit = time_limit
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join(
            [str(TESTS_DIR), str(TESTS_DIR.parent), child_env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        # always one thread: the runner forks after loading a model, and a child forked from a process whose OpenMP
        # pool has several threads can deadlock on the pool's lock (seen with OMP_NUM_THREADS=2)
        child_env["OMP_NUM_THREADS"] = "1"
        child_env.setdefault("HF_HUB_OFFLINE", "1")
        child_env.pop("TAC_ECG_DEBUG", None)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "support.capped"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=TESTS_DIR, env=child_env,
        )
        ready = self._proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the capped runner did not start: {ready!r}")

    def _request(self, payload: dict) -> CaseResult:
        payload = {"address_space": self.address_space, "time_limit": self.time_limit, **payload}
        self._proc.stdin.write(json.dumps(payload) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the capped runner died")
        return CaseResult(**json.loads(line))

    def cli(self, argv: list, cwd: str | os.PathLike | None = None, env: dict | None = None) -> CaseResult:
        """``tac-ecg ARGV`` (``tac_ecg_hf.cli.main``) in a capped child; ``env`` entries are set in the child."""
        request = {"cli": [os.fspath(a) for a in argv], "cwd": os.fspath(cwd) if cwd else None, "env": env or {}}
        return self._request(request)

    def call(self, name: str, **kwargs) -> CaseResult:
        """``support.fuzz_cases.<name>(**kwargs)`` in a capped child; its JSON return value is ``result.value``."""
        return self._request({"call": name, "kwargs": kwargs})

    def warm_up(self, model: str | os.PathLike, record: str | os.PathLike, task: str) -> None:
        """One load and prediction in the runner itself (see ``fuzz_cases.warm_up``): cheaper children."""
        result = self._request({"call": "warm_up", "kwargs": {"model": os.fspath(model), "record": os.fspath(record),
                                                               "task": task}, "in_runner": True})
        if result.exit_code != 0:
            raise RuntimeError(f"warming up on {model} failed: {result.stderr[-2000:]}")

    def preload(self, model: str | os.PathLike, tasks: list[str] | None = None) -> list[str]:
        """Load a classifier in the runner itself (uncapped, once), so that the children forked after it predict with
        it directly (``fuzz_cases.predict_file`` with the same ``model``)."""
        kwargs = {"model": os.fspath(model), "tasks": tasks}
        result = self._request({"call": "preload", "kwargs": kwargs, "in_runner": True})
        if result.exit_code != 0:
            raise RuntimeError(f"preloading {model} failed: {result.stderr[-2000:]}")
        return result.value

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> CappedRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------------------
# the runner process


def _run_child(request: dict, out_path: str, err_path: str, value_path: str) -> None:
    """In the forked child: cap, redirect, run, exit with the case's exit code (never returns)."""
    import resource
    import traceback

    code = 70
    try:
        cap = int(request["address_space"])
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for fd, path in ((1, out_path), (2, err_path)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        for key, value in (request.get("env") or {}).items():
            os.environ[key] = value
        if request.get("cwd"):
            os.chdir(request["cwd"])
        if "cli" in request:
            from tac_ecg_hf.cli import main

            try:
                code = main(request["cli"])
            except SystemExit as exc:  # argparse's own exits
                code = exc.code if isinstance(exc.code, int) else 2
        else:
            from support import fuzz_cases

            value = getattr(fuzz_cases, request["call"])(**request.get("kwargs", {}))
            with open(value_path, "w") as fh:
                json.dump(value, fh)
            code = 0
    except BaseException:  # noqa: BLE001 - whatever escapes is the test's failure, reported on stderr
        traceback.print_exc()
        code = 99
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 98)


def _run_here(request: dict) -> dict:
    """A ``call`` in the runner process itself (``preload``): no cap, no fork."""
    import traceback

    from support import fuzz_cases

    try:
        value = getattr(fuzz_cases, request["call"])(**request.get("kwargs", {}))
    except Exception:  # noqa: BLE001 - reported to the test
        return {"exit_code": 1, "signal": None, "stdout": "", "stderr": traceback.format_exc(), "seconds": 0.0,
                "max_rss_mb": 0.0, "timed_out": False, "value": None}
    return {"exit_code": 0, "signal": None, "stdout": "", "stderr": "", "seconds": 0.0, "max_rss_mb": 0.0,
            "timed_out": False, "value": value}


def _serve() -> None:
    import select
    import signal
    import tempfile
    import time

    import numpy  # noqa: F401 - imported once here, shared by every child
    import peft  # noqa: F401
    import scipy.signal  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import wfdb  # noqa: F401

    import tac_ecg_hf.cli  # noqa: F401
    import tac_ecg_hf.inference  # noqa: F401
    import tac_ecg_hf.safety  # noqa: F401
    from tac_ecg_hf.data import read_record  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("in_runner"):
            print(json.dumps(_run_here(request)), flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="capped-") as tmp:
            out_path, err_path, value_path = (os.path.join(tmp, n) for n in ("out", "err", "value.json"))
            start = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _run_child(request, out_path, err_path, value_path)
            pidfd = os.pidfd_open(pid)  # readable when the child exits (Linux 5.3+)
            try:
                exited, _, _ = select.select([pidfd], [], [], float(request["time_limit"]))
            finally:
                os.close(pidfd)
            timed_out = not exited
            if timed_out:
                os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            seconds = time.monotonic() - start

            def read(path):
                try:
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        return fh.read()
                except FileNotFoundError:
                    return ""

            value = None
            if os.path.exists(value_path):
                with open(value_path) as fh:
                    value = json.load(fh)
            result = {
                "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "stdout": read(out_path),
                "stderr": read(err_path),
                "seconds": seconds,
                "max_rss_mb": usage.ru_maxrss / 1024,
                "timed_out": timed_out,
                "value": value,
            }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _serve()
