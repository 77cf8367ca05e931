"""The performance page's block (docs/performance.md) is generated from docs/bench.json and must agree with it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from bench_record import BENCH_FILE, LoadWatch, bytecode_cache, record
from bench_report import README, main, readme_block, render


@pytest.fixture()
def bench() -> dict[str, Any]:
    return dict(json.loads(BENCH_FILE.read_text()))


def test_the_readme_figures_are_the_bench_file(bench: dict[str, Any]) -> None:
    assert readme_block(README.read_text()) == render(bench)


def test_the_block_carries_the_headline_figures(bench: dict[str, Any]) -> None:
    block = render(bench)
    cold = bench["service"]["cold_start"]
    assert all(f"**{cold[mode]['median_s']:.2f} s**" in block for mode in ("cache_off", "cache_on"))
    assert f"**{bench['service']['in_process']['/recommend known user']['p50_ms']:.2f} ms**" in block
    assert all(f"**{run['wall_s']:.1f} s**" in block for run in bench["pipeline"]["runs"])


def test_check_fails_on_a_drifted_readme_and_write_repairs_it(bench: dict[str, Any], tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    p50 = f"**{bench['service']['in_process']['/recommend known user']['p50_ms']:.2f} ms**"
    readme.write_text(README.read_text().replace(p50, "**0.01 ms**"))
    assert main(["--check", "--readme", str(readme)]) == 1
    assert main(["--write", "--readme", str(readme)]) == 0
    assert main(["--check", "--readme", str(readme)]) == 0
    assert readme.read_text() == README.read_text()


def test_it_says_whether_the_machine_was_quiet(bench: dict[str, Any]) -> None:
    quiet, busy = copy.deepcopy(bench), copy.deepcopy(bench)
    for section in quiet.values():
        section["load"] |= {"quiet": True, "other_processes_cores": 0.02}
    for section in busy.values():
        section["load"] |= {"quiet": False, "other_processes_cores": 1.25}
    assert "was quiet" in render(quiet) and "not quiet" not in render(quiet)
    assert "**Some benchmarks shared the machine**" in render(busy) and "1.2 during the service benchmark" in render(
        busy
    )
    one = copy.deepcopy(quiet)
    one["service"]["load"] |= {"quiet": False, "other_processes_cores": 0.7}
    assert "(0.7 during the service benchmark;" in render(one) and "pipeline benchmark" not in render(one)


def test_it_says_whether_the_bytecode_cache_was_on(bench: dict[str, Any]) -> None:
    on = copy.deepcopy(bench)
    on["service"]["environment"]["bytecode_cache"] = bytecode_cache({"PYTHONPYCACHEPREFIX": "/tmp/pyc"})
    off = copy.deepcopy(bench)
    off["service"]["environment"]["bytecode_cache"] = bytecode_cache({"PYTHONDONTWRITEBYTECODE": "1"})
    assert "the bytecode cache on (`PYTHONPYCACHEPREFIX`)" in render(on)
    assert "the bytecode cache off (`PYTHONDONTWRITEBYTECODE=1`" in render(off)


def test_record_writes_its_section_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    record("pipeline", {"runs": [1]}, LoadWatch(), path)
    record("service", {"model": {"items": 3}}, LoadWatch(), path)
    data = json.loads(path.read_text())
    assert data["pipeline"]["runs"] == [1] and data["service"]["model"] == {"items": 3}
    for section in data.values():
        assert set(section["load"]) == {"wall_s", "other_processes_cores", "loadavg_start", "loadavg_end", "quiet"}
        assert section["environment"]["cores"] >= 1 and "on" in section["environment"]["bytecode_cache"]


def test_the_users_table_is_rendered_only_when_measured(bench: dict[str, Any]) -> None:
    with_users = copy.deepcopy(bench)
    with_users["users"] = {**copy.deepcopy(bench["service"]), "rows": [
        {"users": 1_000_000, "interactions": 4_163_155, "user_arrays": flag, "artifact_mb": size, "total_s": total,
         "import_s": 1.2, "min_s": total, "max_s": total, "rss_mb": rss, "peak_rss_mb": rss, "runs": 3}
        for flag, size, total, rss in ((True, 279.8, 8.28, 540), (False, 6.7, 2.22, 128))
    ]}  # fmt: skip
    with_users["users"]["load"] = {**with_users["users"]["load"], "quiet": False, "other_processes_cores": 0.5}
    block = render(with_users)
    assert "| 1,000,000 (4,163,155) | in the artifact | 279.8 MB | **8.28 s**" in block
    assert "| 1,000,000 (4,163,155) | none (item-side only) | 6.7 MB | **2.22 s**" in block
    assert "during the users benchmark" in block
    without = {k: v for k, v in bench.items() if k != "users"}
    assert "per-user arrays" not in render(without)
