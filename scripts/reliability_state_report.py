"""The markdown section of docs/reliability.md for `make reliability`, part 4, from the figures of its run."""

from __future__ import annotations

import os
from typing import Any

from reliability_stack import RECOVERY_TIMEOUT
from reliability_state_faults import THROTTLE_SHARE
from reliability_state_load import (
    BATCH,
    BULK_POSTS,
    CONTENTION_CLIENTS,
    CONTENTION_EVENTS,
    HEAVY_BATCHES,
    HEAVY_ID_CHARS,
    ITEM_LIMIT,
    MANY_CAP,
    MANY_THREADS,
    MANY_USERS,
)

from reccore.settings import ServiceSettings

DEADLINE = float(ServiceSettings.model_fields["request_deadline_seconds"].default)  # the APIs keep the default


def _default(setting: str) -> Any:
    return ServiceSettings.model_fields[setting].default


def _ok(met: bool) -> str:
    return "yes" if met else "**NO**"


def _statuses(statuses: dict[str, dict[int, int]]) -> str:
    return "; ".join(
        f"`/{kind}` " + ", ".join(f"{n} × {s or 'no answer'}" for s, n in counts.items())
        for kind, counts in statuses.items()
    )


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"`{code}` × {n}" for code, n in errors.items()) or "none"


def _secs(value: float | None) -> str:
    return f"not within {RECOVERY_TIMEOUT:.0f} s" if value is None else f"{value:.2f} s"


def _table(rows: list[tuple[str, str, str, bool | None]]) -> list[str]:
    lines = ["| figure | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {goal} | {'' if met is None else _ok(met)} |" for name, value, goal, met in rows]
    return [*lines, ""]


def _fault_rows(f: dict[str, Any], heal: str) -> list[tuple[str, str, str, bool | None]]:
    during = f["during"]
    answered = during["statuses"].get("recommend", {}).get(200, 0)
    return [
        ("before the fault", _statuses(f["before"]["statuses"]), "all 200",
         all(set(counts) == {200} for counts in f["before"]["statuses"].values())),
        ("during: statuses", _statuses(during["statuses"]), "never 500", during["server_errors"] == 0
         and during["failed_connections"] == 0),
        ("during: 503 error codes", _errors(during["errors"]), "503, not 500", None),
        ("during: degraded `/recommend`", f"{during['degraded']} of {answered} answered", "every 200 degraded",
         during["degraded"] == answered),
        ("during: slowest request", f"{during['max_s']:.2f} s (median {during['p50_s']:.2f} s)", "≤ 3 s",
         during["max_s"] <= 3.0),
        (heal, f"{f['heal_s']:.2f} s", "", None),
        ("recovery: `/recommend` undegraded", _secs(f["recommend_s"]), "no restart", f["recommend_s"] is not None),
        ("recovery: `/events` 200", _secs(f["events_s"]), "no restart", f["events_s"] is not None),
    ]  # fmt: skip


def report(figures: dict[str, Any]) -> str:
    """The markdown section appended to docs/reliability.md."""
    stalled, refused, throttle = figures["stalled"], figures["refused"], figures["throttled"]
    cont, heavy_, bulk_, twins_, many = (figures[k] for k in ("contention", "heavy", "bulk", "twins", "many"))
    lines = [
        "",
        "## User state and the events path",
        "",
        f"`scripts/reliability_state.py`, {figures['total_s'] / 60:.1f} min. The user-state table (DynamoDB) and the",
        "event stream (Firehose) are on a second moto server (the model's S3 stays on the first), so they can be",
        "stalled or stopped without touching the model. In 1a and 2a the whole server fails, and `/events`, which",
        "writes the log before the table, fails on Firehose; in 1b and 2b a proxy in front of the server fails",
        "DynamoDB's calls alone, so `/events` reaches the table. Every API: uvicorn, 1 worker,",
        f"`REC_REQUEST_DEADLINE_SECONDS={DEADLINE:g}` (the default) shared by a request's backend calls; the table's",
        f"and the stream's clients are bounded like S3's (connect {_default('s3_connect_timeout'):g} s, read "
        f"{_default('s3_read_timeout'):g} s, {_default('s3_max_attempts')} attempts). Requests are sent from",
        "outside over HTTP on 127.0.0.1; in 1-3 they alternate `/recommend` for a user the model knows and one",
        "event for that user.",
        "",
        f"### 1a. DynamoDB and Firehose stalled (SIGSTOP), {stalled['during']['requests']} sequential requests",
        "",
        *_table(_fault_rows(stalled, "SIGCONT sent")),
        "### 1b. DynamoDB alone stalled (its calls held unanswered by a proxy; Firehose answers)",
        "",
        *_table(_fault_rows(figures["stalled_dynamodb"], "calls released")),
        f"### 2a. DynamoDB and Firehose refused (server stopped), {refused['during']['requests']} sequential requests",
        "",
        *_table(_fault_rows(refused, "restart on the same port, table and stream re-created")),
        "### 2b. DynamoDB alone refused (the proxy in front of it stopped; Firehose answers)",
        "",
        *_table(_fault_rows(figures["refused_dynamodb"], "proxy restarted on its port")),
        f"### 3. DynamoDB throttled ({THROTTLE_SHARE:.0%} of its calls answered 400 "
        f"`ProvisionedThroughputExceededException` by a proxy), {throttle['requests']} sequential requests",
        "",
        *_table([
            ("statuses", _statuses(throttle["statuses"]), "never 500", throttle["server_errors"] == 0),
            ("503 error codes", _errors(throttle["errors"]), "", None),
            ("degraded `/recommend`", str(throttle["degraded"]), "", None),
            ("latency", f"median {throttle['p50_s'] * 1e3:.0f} ms, max {throttle['max_s'] * 1e3:.0f} ms", "≤ 3 s",
             throttle["max_s"] <= 3.0),
            ("DynamoDB calls at the proxy / throttled", f"{throttle['proxy'].get('dynamodb_calls', 0)} / "
             f"{throttle['proxy'].get('throttled', 0)}", "", None),
        ]),
        f"### 4. Contention: {CONTENTION_CLIENTS} concurrent clients × {CONTENTION_EVENTS} single-event `/events`,"
        " one new user (distinct items and event ids)",
        "",
        *_table([
            ("statuses", _statuses(cont["statuses"]), "all 200",
             cont["statuses"].get("events") == {200: cont["posted"]}),
            ("503s", str(sum(n for s, n in cont["statuses"].get("events", {}).items() if s == 503))
             + (f" ({_errors(cont['errors'])})" if cont["errors"] else ""), "0",
             cont["statuses"].get("events", {}).get(503, 0) == 0),
            ("latency", f"median {cont['p50_s'] * 1e3:.0f} ms, max {cont['max_s'] * 1e3:.0f} ms", "", None),
            ("`GET /users/{id}` afterwards", f"{cont['history_status']}: n_interactions {cont['n_interactions']}, "
             f"{cont['history_items_found']} of {cont['distinct_items']} items in the history",
             f"all {cont['posted']}", cont["n_interactions"] == cont["posted"]
             and cont["history_items_found"] == cont["distinct_items"]),
        ]),
        f"### 5. A heavy user: {HEAVY_BATCHES} batches of {BATCH} events, {HEAVY_ID_CHARS}-character item ids",
        "",
        *_table([
            ("batch statuses", ", ".join(str(s) for s in heavy_["batch_statuses"]), "all 200",
             all(s == 200 for s in heavy_["batch_statuses"])),
            ("503 error codes", _errors(heavy_["errors"]), "", None),
            ("events accepted", f"{heavy_['accepted']:,} of {HEAVY_BATCHES * BATCH:,}", "", None),
            ("slowest batch", f"{heavy_['max_s'] * 1e3:.0f} ms (median {heavy_['p50_s'] * 1e3:.0f} ms)", "", None),
            ("stored live item", f"{heavy_['item_bytes']:,} bytes ({heavy_['stored_events']} events, "
             f"{heavy_['stored_seen']} seen ids)", "< 400 KB", 0 < heavy_["item_bytes"] < ITEM_LIMIT),
            ("`/recommend` for the user", f"{heavy_['recommend_status']}, {heavy_['recommend_s'] * 1e3:.0f} ms, "
             f"degraded {heavy_['recommend_degraded']}", "200", heavy_["recommend_status"] == 200),
        ]),
        f"### 6. {MANY_USERS:,} new users on the embedded store (no table, LRU cap {MANY_CAP:,}), "
        f"batches of {BATCH}, {MANY_THREADS} keep-alive clients",
        "",
        "RSS of the API process, read from `/proc/<pid>/status`"
        + (f". **{many['stopped']}**" if many["stopped"] else "") + ":",
        "",
        "| users posted | elapsed | VmRSS | VmHWM |",
        "|---:|---:|---:|---:|",
        *[
            f"| {s['users']:,} | {s.get('seconds', 0):.0f} s | {s['VmRSS']:.0f} MB | {s['VmHWM']:.0f} MB |"
            for s in many["samples"]
        ],
        "",
        *_many_rows(many),
        f"### 7. One `/events` POST of {BATCH} events for {BATCH} distinct new users, against the table "
        f"({BULK_POSTS} posts)",
        "",
        *_table([
            ("statuses", _statuses(bulk_["statuses"]), "all 200", bulk_["statuses"].get("events") == {200: BULK_POSTS}),
            ("503 error codes", _errors(bulk_["errors"]), "", None),
            ("latency", f"median {bulk_['p50_s'] * 1e3:.0f} ms, max {bulk_['max_s'] * 1e3:.0f} ms "
             f"({', '.join(f'{x * 1e3:.0f}' for x in bulk_['latencies_s'])} ms)", "≤ 1 s", bulk_["max_s"] <= 1.0),
            ("users in the table 2 s after each post (its status)", ", ".join(
                f"{n} ({o})" for n, o in zip(bulk_["stored"], bulk_["post_statuses"], strict=True)
            ) + f" of {BATCH}", "", None),
            ("CPU per post (median; /proc)", f"API {bulk_['api_cpu_s']:.2f} s, DynamoDB's moto "
             f"{bulk_['moto_cpu_s']:.2f} s, on {os.cpu_count()} cores", "", None),
        ]),
        "### 8. One event id (`order-1`) for two users, through the S3 event log to a training run",
        "",
        *_table(_twins_rows(twins_)),
        f"Server tracebacks logged by these APIs: {figures['tracebacks']}.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _many_rows(many: dict[str, Any]) -> list[str]:
    samples = many["samples"]
    at_cap = next((s for s in samples if s["users"] == MANY_CAP), None)
    last = samples[-1]
    growth: tuple[str, bool | None] = ("n/a: the run did not pass the cap", False)
    if at_cap is not None and last["users"] > MANY_CAP:
        held = (at_cap["VmRSS"] - samples[0]["VmRSS"]) * 2**20 / MANY_CAP  # bytes per user held under the cap
        more = last["users"] - MANY_CAP
        per_user = (last["VmRSS"] - at_cap["VmRSS"]) * 2**20 / more
        growth = (
            f"{last['VmRSS'] - at_cap['VmRSS']:+.0f} MB over {more:,} more users ({per_user:.0f} B each; "
            f"a user held under the cap cost {held:.0f} B)",
            per_user < 0.05 * held,
        )
    return _table([
        ("statuses", ", ".join(f"{n} × {s or 'no answer'}" for s, n in sorted(many["statuses"].items())),
         "all 200", set(many["statuses"]) == {200}),
        ("users posted", f"{many['users']:,} in {many['seconds']:.0f} s "
         f"(a batch: median {many['p50_s'] * 1e3:.0f} ms, max {many['max_s'] * 1e3:.0f} ms)", f"{MANY_USERS:,}",
         many["users"] == MANY_USERS),
        ("RSS growth after the cap", growth[0], "flat: < 5% of a held user's cost per further user", growth[1]),
        ("`GET /users/{id}`: the first user / the last", f"{many['first_user_status']} / {many['last_user_status']}",
         "404 (evicted) / 200", (many["first_user_status"], many["last_user_status"]) == (404, 200)),
    ])  # fmt: skip


def _twins_rows(t: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    posted = "; ".join(f"{status}, accepted {acc}, duplicates {dup}" for status, acc, dup in t["posted"])
    rows: list[tuple[str, str, str, bool | None]] = [
        ("`/events` for twin-a; twin-b", posted, "200, accepted 1, each",
         all(p == (200, 1, 0) for p in t["posted"])),
        ("`python -m pipeline run --events …`", f"exit {t['exit']}, {t['seconds']:.0f} s", "exit 0", t["exit"] == 0),
    ]  # fmt: skip
    events = t.get("events")
    if events:
        rows += [
            ("`data.events.records`", str(events["records"]), "2", events["records"] == 2),
            ("`data.events.duplicates`", str(events["duplicates"]), "0", events["duplicates"] == 0),
        ]
    else:
        rows.append(("`data.events`", "absent" if t["exit"] == 0 else t.get("stderr", "")[-200:], "present", False))
    return rows
