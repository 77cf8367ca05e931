"""What the benchmarks record besides their figures: the machine, whether it was quiet, the bytecode cache.

``make bench`` writes each benchmark's figures into one section of ``docs/bench.json``
(``bench_pipeline.py`` → ``pipeline``, ``bench_service.py`` → ``service``); ``bench_report.py``
renders docs/performance.md's table from that file. Imported by the bench scripts
(Python puts a script's own folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_FILE = ROOT / "docs" / "bench.json"
# Other processes using less than this many cores on average (of the run's wall time) count as a quiet machine.
QUIET_CORES = 0.1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bytecode_cache(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Whether processes started with ``env`` (default: this one's) write and reuse compiled bytecode.

    With ``PYTHONDONTWRITEBYTECODE`` set (machine-wide on our VMs) nothing is written, so every fresh
    process compiles the repository's own modules again; installed packages keep the ``.pyc`` pip wrote.
    """
    env = dict(os.environ) if env is None else env
    dont_write = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    return {
        "on": not dont_write,
        "PYTHONDONTWRITEBYTECODE": env.get("PYTHONDONTWRITEBYTECODE"),
        "PYTHONPYCACHEPREFIX": env.get("PYTHONPYCACHEPREFIX"),
    }


def _busy_core_seconds() -> float:
    """CPU time (all cores, all processes) spent busy since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_core_seconds() -> float:
    """CPU time of this process and of every child it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class LoadWatch:
    """Measures how much CPU *other* processes used while a benchmark ran: the machine is shared.

    Whole-machine busy time from /proc/stat minus this process's and its waited-for children's own time.
    """

    def __init__(self) -> None:
        self.start_wall = time.monotonic()
        self.start_busy = _busy_core_seconds()
        self.start_own = _own_core_seconds()
        self.loadavg_start = os.getloadavg()

    def result(self) -> dict[str, Any]:
        wall = time.monotonic() - self.start_wall
        others = (_busy_core_seconds() - self.start_busy) - (_own_core_seconds() - self.start_own)
        others_cores = max(0.0, others) / wall if wall > 0 else 0.0
        return {
            "wall_s": round(wall, 1),
            "other_processes_cores": round(others_cores, 2),
            "loadavg_start": [round(v, 2) for v in self.loadavg_start],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
            "quiet": others_cores < QUIET_CORES,
        }


def environment() -> dict[str, Any]:
    return {
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "bytecode_cache": bytecode_cache(),
    }


def record(section: str, figures: dict[str, Any], load: LoadWatch, path: Path = BENCH_FILE) -> None:
    """Write ``figures`` with the environment and the load into ``section`` of ``path``, keeping other sections."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[section] = {
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "environment": environment(),
        "load": load.result(),
        **figures,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    print(f"wrote the {section} figures to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def import_seconds(module: str, env: dict[str, str] | None = None, runs: int = 3) -> float:
    """Median wall time of ``import module`` in a fresh interpreter (start-up excluded)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    command = [sys.executable, "-c", code]
    samples = [
        float(subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return round(statistics.median(samples), 3)
