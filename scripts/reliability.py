"""`make reliability`: the long runs of the reliability suite; prints the figures and writes docs/reliability.md.

1. schemathesis against the live API's OpenAPI, every phase, all checks;
2. hot swap under load: 32 keep-alive connections while a new version is published;
3. faults of the store over HTTP (moto's server): refused, stalled (SIGSTOP), emptied, a corrupt file,
   a shape-inconsistent version, LATEST pointing nowhere. For each: a loaded API keeps serving, a fresh
   process answers 503 within the wait bound, and both recover without a restart once the fault heals;
4. user state and the events path (scripts/reliability_state.py): DynamoDB stalled, refused and throttled,
   contention on one user, a heavy user, a million new users on the embedded store, a 500-user batch, and one
   event id for two users through to a training run.
Everything runs on 127.0.0.1 (moto, uvicorn) and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import reliability_state
import reliability_state_report
from loadgen import Request, Sample, percentile, run_load
from reliability_stack import BUCKET, PREFIX, RECOVERY_TIMEOUT, ROOT, Api, Moto, republish

from reccore.layout import LATEST_KEY, Files
from reccore.versions import read_manifest, read_verified

REFRESH = 2.0  # REC_REFRESH_SECONDS of the APIs under test
FAULT_LOAD_SECONDS = 3 * REFRESH  # requests against the loaded API while a fault lasts
KNOWN = [f"u{n:07d}" for n in range(1, 40)]


def schemathesis(api: Api, seconds: int) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("schemathesis")
    config = ROOT / "tests" / "integration" / "schemathesis.toml"
    command = [str(exe), "--config-file", str(config), "run", f"{api.url}/openapi.json",
               "--phases", "examples,coverage,fuzzing,stateful",
               "--checks", "all", "--max-time", str(seconds), "--no-color"]  # fmt: skip
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=seconds * 6)
    output = result.stdout + result.stderr
    generated = re.search(r"(\d+) generated", output)
    failures = re.findall(r"❌ (.+): (\d+)", output.split("SUMMARY")[-1])
    print(output[output.find("FAILURES") - 40 :] if "FAILURES" in output else output[-1500:])
    return {
        "exit": result.returncode,
        "cases": int(generated.group(1)) if generated else 0,
        "failures": ", ".join(f"{name} ×{n}" for name, n in failures) or "none",
        "seconds": time.monotonic() - start,
    }


def hot_swap(api: Api, moto: Moto, model: tuple[Any, dict[str, bytes]], seconds: float) -> dict[str, Any]:
    requests = [Request("POST", "/recommend", f'{{"user_id":"{u}","k":10}}'.encode()) for u in KNOWN[:8]]
    requests += [
        Request("POST", "/recommend", b'{"recent_items":["i000001","i000002","i000003"],"k":10}'),
        Request("POST", "/recommend", b'{"k":10,"exclude_categories":["books"]}'),
        Request("GET", "/items/i000042/similar?k=10"),
    ]
    swap: dict[str, Any] = {}

    def publish_later() -> None:
        time.sleep(seconds / 3)
        swap["version"] = republish(moto.store(), *model)
        swap["at"] = time.monotonic()  # LATEST now names the new version

    publisher = threading.Thread(target=publish_later)
    publisher.start()
    samples = asyncio.run(run_load("127.0.0.1", api.port, requests, connections=32, seconds=seconds))
    publisher.join()
    new = [s for s in samples if s.version == swap["version"]]
    first_new = min(s.start + s.latency for s in new) if new else float("inf")
    around = [s.latency for s in samples if swap["at"] - 1 <= s.start + s.latency <= first_new + 1]
    latencies = [s.latency for s in samples]
    return {
        "requests": len(samples),
        "errors": sum(s.status != 200 for s in samples),
        "rps": len(samples) / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "swap_max_ms": max(around, default=float("nan")) * 1e3,
        "new_version_after_s": first_new - swap["at"],
        "old_after_swap": sum(s.version not in (None, swap["version"]) and s.start > first_new for s in samples),
    }


def loaded_while(api: Api, seconds: float) -> dict[str, Any]:
    """Sequential requests against a loaded API for ``seconds``: errors, the slowest, the final /health."""
    results: list[Sample] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for method, path, body in (("POST", "/recommend", {"user_id": "u0000001", "k": 10}), ("GET", "/health", None)):
            start = time.monotonic()
            status, latency, _ = api.call(method, path, body)
            results.append(Sample(start, latency, status, None))
        time.sleep(0.05)
    _, _, health = api.call("GET", "/health")
    return {
        "requests": len(results),
        "errors": sum(r.status != 200 for r in results),
        "max_ms": max(r.latency for r in results) * 1e3,
        "stale": (health or {}).get("stale_reason"),
    }


def faults(moto: Moto, model: tuple[Any, dict[str, bytes]], log: Path) -> list[dict[str, Any]]:
    store = moto.store

    def kill_latest() -> None:
        store().put(LATEST_KEY, b"20990101T000000.000000Z-nowher")

    def empty() -> None:
        keys = store().list_keys("")
        store().delete(keys)

    def restart() -> None:
        moto.start()  # an empty server: moto keeps its state in memory

    def corrupt() -> None:
        republish(store(), *model, fault="corrupt")

    def inconsistent() -> None:
        republish(store(), *model, fault="inconsistent")

    def nothing() -> None:
        return None

    # name -> (break it, heal it: then a good version is published unless the fault made that impossible)
    kinds: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "S3 refused (server stopped)": (moto.stop, restart),
        "S3 stalled (SIGSTOP)": (moto.pause, moto.resume),
        "bucket emptied": (empty, nothing),
        "corrupt file (checksum)": (corrupt, nothing),
        "shape-inconsistent version": (inconsistent, nothing),
        "LATEST pointing nowhere": (kill_latest, nothing),
    }
    rows = []
    for name, (inject, heal) in kinds.items():
        republish(store(), *model)
        loaded = Api(moto, log, REC_REFRESH_SECONDS=str(REFRESH))
        loaded.wait_until(lambda status, body: status == 200, RECOVERY_TIMEOUT)
        inject()
        during = loaded_while(loaded, FAULT_LOAD_SECONDS)
        fresh = Api(moto, log, REC_REFRESH_SECONDS=str(REFRESH))
        fresh_status, fresh_latency, _ = fresh.call("GET", "/health")
        heal()
        healed_at = time.monotonic()
        good = republish(store(), *model)
        loaded_back = loaded.wait_until(
            lambda s, b, good=good: s == 200 and b["model_version"] == good, RECOVERY_TIMEOUT
        )
        fresh_back = fresh.wait_until(lambda s, b: s == 200, RECOVERY_TIMEOUT)
        row = {
            "fault": name,
            **{f"loaded_{k}": v for k, v in during.items()},
            "fresh_status": fresh_status,
            "fresh_ms": fresh_latency * 1e3,
            "heal_to_publish_s": time.monotonic() - healed_at,
            "loaded_recovery_s": loaded_back,
            "fresh_recovery_s": fresh_back,
        }
        print(row)
        rows.append(row)
        for api in (loaded, fresh):
            api.stop()
    return rows


def report(figures: dict[str, Any], path: Path) -> str:
    st, swap = figures["schemathesis"], figures["swap"]
    lines = [
        "# Reliability figures",
        "",
        f"Generated by `make reliability` (`scripts/reliability.py`) on {figures['machine']}, {figures['when']}.",
        "moto's S3 server and uvicorn (1 worker) on 127.0.0.1; model: 100k synthetic interactions (10,000 items,",
        f"6,500 users, flat index); `REC_REFRESH_SECONDS={REFRESH:g}`, S3 timeouts and waits at their defaults",
        "(connect 1 s, read 2 s, 2 attempts, a request waits at most 5 s for a load or a LATEST check).",
        "",
        "## schemathesis (all checks; examples, coverage, fuzzing and stateful phases)",
        "",
        "| test cases | failures | exit code | time |",
        "|---:|---|---:|---:|",
        f"| {st['cases']} | {st['failures']} | {st['exit']} | {st['seconds']:.0f} s |",
        "",
        "## Hot swap under load (32 keep-alive connections; a new version published a third of the way in)",
        "",
        "| requests | errors | req/s | p50 | p99 | max | max within 1 s of the swap "
        "| new version served after LATEST moved |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {swap['requests']} | {swap['errors']} | {swap['rps']:.0f} | {swap['p50_ms']:.1f} ms "
        f"| {swap['p99_ms']:.1f} ms "
        f"| {swap['max_ms']:.0f} ms | {swap['swap_max_ms']:.0f} ms | {swap['new_version_after_s']:.2f} s "
        f"(bound: refresh {REFRESH:g} s + 1 s) |",
        "",
        "## Faults of the store",
        "",
        "Loaded: an API that had loaded a model keeps answering while the fault lasts (sequential `/recommend` and",
        f"`/health` for {FAULT_LOAD_SECONDS:g} s). Fresh: a new process started during the fault; its first request.",
        "Recovery: seconds from publishing a good version after the fault healed until each API serves it.",
        "",
        "| fault | loaded: requests / errors / slowest | loaded: /health stale_reason | fresh: status, latency "
        "| recovery: loaded / fresh |",
        "|---|---|---|---|---|",
    ]
    for row in figures["faults"]:

        def secs(value: float | None) -> str:
            return "not recovered" if value is None else f"{value:.2f} s"

        lines.append(
            f"| {row['fault']} | {row['loaded_requests']} / {row['loaded_errors']} / {row['loaded_max_ms']:.0f} ms "
            f"| {row['loaded_stale']} | {row['fresh_status']}, {row['fresh_ms']:.0f} ms "
            f"| {secs(row['loaded_recovery_s'])} / {secs(row['fresh_recovery_s'])} |"
        )
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemathesis-seconds", type=int, default=120)
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)  # moto accepts any; boto3 needs some
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    moto = Moto()
    apis: list[Api] = []
    try:
        moto.start()
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "uvicorn.log"
            env = {**os.environ, "AWS_ENDPOINT_URL_S3": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
            subprocess.run([sys.executable, "-m", "pipeline", "run", "--output", f"s3://{BUCKET}/{PREFIX}", "--json"],
                           cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            store = moto.store()
            manifest = read_manifest(store, store.get(LATEST_KEY).decode())
            model = (manifest, {name: read_verified(store, manifest, name) for name in Files.ALL})
            api = Api(moto, log, REC_REFRESH_SECONDS=str(REFRESH))
            apis.append(api)
            api.wait_until(lambda status, body: status == 200, RECOVERY_TIMEOUT)
            figures: dict[str, Any] = {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "schemathesis": schemathesis(api, args.schemathesis_seconds),
                "swap": hot_swap(api, moto, model, args.load_seconds),
            }
            print(figures["swap"])
            api.stop()
            figures["faults"] = faults(moto, model, log)
            print(report(figures, args.report))
            state = reliability_state.run(moto, model, log, KNOWN)  # part 4: user state and the events path
            with args.report.open("a") as out:
                out.write(reliability_state_report.report(state))
            print(reliability_state_report.report(state))
            if "Traceback" in log.read_text(errors="replace"):
                print(log.read_text(errors="replace")[-3000:])
                raise SystemExit("a server logged a traceback")
    finally:
        for api in apis:
            api.stop()
        moto.stop()


if __name__ == "__main__":
    main()
