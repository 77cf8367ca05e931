"""Start, report, decide and stop a champion/challenger experiment (``python -m pipeline experiment ...``).

The decision job (:func:`evaluate`) joins impressions and events (:mod:`pipeline.experiment.attribution`),
applies the sequential test (:mod:`pipeline.experiment.stats`, valid however often it runs) and ends the
experiment when the test decides: **rollback** sets the challenger's share to 0 (every user back on the
champion at the services' next check), **promote** moves ``LATEST`` to the challenger. Each decision is
appended to the experiment object and logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pipeline.experiment.attribution import attribute
from pipeline.experiment.stats import ctr_interval, decide
from reccore.errors import ConfigError
from reccore.experiment import CHALLENGER, CHAMPION, MAX_LOOKS, Experiment, read_experiment, write_experiment
from reccore.layout import LATEST_KEY
from reccore.storage import ArtifactStore
from reccore.versions import read_latest_version, read_manifest

logger = logging.getLogger(__name__)
ALPHA = 0.05


def start(store: ArtifactStore, challenger: str, share: float) -> Experiment:
    """Start an experiment of ``challenger`` (a published version) against LATEST at ``share`` of the traffic."""
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"--share must be in (0, 1], got {share}")
    champion = read_latest_version(store)
    read_manifest(store, challenger)  # it must exist and be readable
    if challenger == champion:
        logger.warning("the challenger is the champion: an A/A experiment")
    current = read_experiment(store)
    if current is not None and current.running:
        raise ConfigError(
            f"experiment {current.id} is running: stop it first (.venv/bin/python -m pipeline experiment stop)"
        )
    experiment = Experiment(challenger=challenger, champion=champion, share=share)
    write_experiment(store, experiment)
    return experiment


def status(store: ArtifactStore, alpha: float = ALPHA) -> dict[str, Any]:
    """The report: per variant impressions, clicks, conversions, CTR and its always-valid interval; the decision."""
    experiment = _current(store)
    joined = attribute(store, experiment.id)
    decision = decide(joined.arms[CHAMPION], joined.arms[CHALLENGER], alpha=alpha)
    variants = {
        name: {
            "version": experiment.champion if name == CHAMPION else experiment.challenger,
            "impressions": arm.impressions,
            "clicks": arm.clicks,
            "conversions": arm.conversions,
            "ctr": arm.ctr,
            "ctr_ci": list(ctr_interval(arm, alpha)),
        }
        for name, arm in joined.arms.items()
        if name in (CHAMPION, CHALLENGER)
    }
    return {
        "experiment": experiment.id,
        "status": experiment.status,
        "share": experiment.share,
        "variants": variants,
        "decision": decision.decision if experiment.running else experiment.status,
        "reason": decision.reason if experiment.running else _last_reason(experiment),
        "events_attributed": joined.events_attributed,
        "events_unmatched": joined.events_unmatched,
    }


def evaluate(store: ArtifactStore, alpha: float = ALPHA) -> dict[str, Any]:
    """Run the decision once and record it as a look; end the experiment if the test decides. Returns the report."""
    experiment = _current(store)
    report = status(store, alpha)
    if not experiment.running:
        return report
    record = {"decision": report["decision"], "reason": report["reason"], "at": datetime.now(UTC).isoformat(),
              "variants": report["variants"]}  # fmt: skip
    looks = [*experiment.looks, record][-MAX_LOOKS:]  # the dashboard's CTR-over-time plot
    if report["decision"] == "continue":
        write_experiment(store, experiment.model_copy(update={"looks": looks}))
        return report
    if report["decision"] == "promote":
        store.put(LATEST_KEY, experiment.challenger.encode())
        ended = experiment.model_copy(
            update={"status": "promote", "decisions": [*experiment.decisions, record], "looks": looks}
        )
    else:
        ended = experiment.model_copy(
            update={"status": "rollback", "share": 0.0, "decisions": [*experiment.decisions, record], "looks": looks}
        )
    write_experiment(store, ended)
    logger.warning(
        "experiment %s ended: %s (%s)", experiment.id, report["decision"], report["reason"], extra={"decision": record}
    )
    return {**report, "status": ended.status}


def scheduled(store: ArtifactStore) -> dict[str, Any]:
    """The scheduled job (the pipeline function's ``experiment-evaluate`` event): :func:`evaluate` if one runs."""
    experiment = read_experiment(store)
    if experiment is None or not experiment.running:
        return {"status": "idle", "reason": "no experiment is running"}
    return evaluate(store)


def stop(store: ArtifactStore) -> Experiment:
    """End the experiment by hand: every user back on the champion; LATEST unchanged."""
    experiment = _current(store)
    stopped = experiment.model_copy(update={"status": "stopped", "share": 0.0})
    write_experiment(store, stopped)
    return stopped


def _current(store: ArtifactStore) -> Experiment:
    experiment = read_experiment(store)
    if experiment is None:
        raise ConfigError(f"no experiment at {store.uri} (start one: .venv/bin/python -m pipeline experiment start)")
    return experiment


def _last_reason(experiment: Experiment) -> str:
    return str(experiment.decisions[-1]["reason"]) if experiment.decisions else f"experiment {experiment.status}"


def describe(report: dict[str, Any]) -> str:
    """The report as a few lines for the console."""
    lines = [f"experiment {report['experiment']}: {report['status']}, challenger share {report['share']:.0%}"]
    for name, v in report["variants"].items():
        lo, hi = v["ctr_ci"]
        lines.append(
            f"  {name:<10} {v['version']}: {v['impressions']:,} impressions, {v['clicks']:,} clicked, "
            f"{v['conversions']:,} converted, CTR {v['ctr']:.4f} [{lo:.4f}, {hi:.4f}]"
        )
    lines.append(f"decision: {report['decision']}: {report['reason']}")
    if report["events_unmatched"]:
        lines.append(f"{report['events_unmatched']:,} events named a recommendation_id no impression has")
    return "\n".join(lines)
