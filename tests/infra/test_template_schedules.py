"""The template's schedules and alarms: training on its schedule, the experiment decision job on its own, and an
alarm on a rollback."""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

from tests.infra.conftest import _non_s3_grants


def test_the_experiment_job_runs_on_its_own_schedule_and_a_rollback_alarms(template: dict[str, Any]) -> None:
    from pipeline.handler import handler
    from reccore.impressions import IMPRESSIONS_DIR

    resources = template["Resources"]
    props = resources["PipelineFunction"]["Properties"]["Events"]["ExperimentSchedule"]["Properties"]
    assert props["State"] == {"Fn::If": ["ExperimentScheduleEnabled", "ENABLED", "DISABLED"]}
    event = json.loads(props["Input"]["Fn::Sub"][0].replace("${Bucket}", "b").replace("${ModelPrefix}", "p"))
    assert event == {"command": "experiment-evaluate", "model": "s3://b/p"}
    # The event the schedule sends is one the handler takes: with no experiment it is idle, not an error.
    with tempfile.TemporaryDirectory() as empty:
        assert handler({**event, "model": empty}, None)["status"] == "idle"
    # The service writes impressions to their own stream (never the training log), under impressions/.
    env = resources["RecommendFunction"]["Properties"]["Environment"]["Variables"]
    assert env["REC_IMPRESSIONS_STREAM"] == {"Ref": "ImpressionsDeliveryStream"}
    destination = resources["ImpressionsDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"] == {"Fn::Sub": f"${{ModelPrefix}}/{IMPRESSIONS_DIR}/"}
    # The decision job logs {"decision": {"decision": "rollback", ...}}: the filter counts exactly those.
    assert (
        resources["ExperimentRollbackMetric"]["Properties"]["FilterPattern"] == '{ $.decision.decision = "rollback" }'
    )
    alarm = resources["ExperimentRollbackAlarm"]["Properties"]
    assert alarm["MetricName"] == "Rollbacks" and alarm["Threshold"] == 1


def test_pipeline_function_batch_writes_the_table_and_runs_on_a_schedule(template: dict[str, Any]) -> None:
    from reccore.settings import PipelineSettings, ServiceSettings

    function = template["Resources"]["PipelineFunction"]
    assert _non_s3_grants(template, "PipelineFunction") == {
        "dynamodb:BatchWriteItem": {"Fn::GetAtt": ["UserStateTable", "Arn"]},
        # large inputs: start a Spark job run on the stack's application, as the stack's job role (pipeline/emr.py)
        "emr-serverless:StartJobRun": {"Fn::GetAtt": ["SparkApplication", "Arn"]},
        "iam:PassRole": {"Fn::GetAtt": ["SparkJobRole", "Arn"]},
    }
    env = function["Properties"]["Environment"]["Variables"]
    assert env["REC_USER_TABLE"] == {"Ref": "UserStateTable"}
    # The variables the template sets are the ones the settings read.
    assert {"user_table", "events"} <= set(PipelineSettings.model_fields)
    assert {"user_table", "events_stream"} <= set(ServiceSettings.model_fields)

    parameter = template["Parameters"]["TrainingSchedule"]
    assert parameter["Default"] == "rate(1 day)"
    pattern = re.compile(parameter["AllowedPattern"])
    assert all(pattern.match(v) for v in ("disabled", "rate(1 day)", "cron(0 3 * * ? *)"))
    assert not pattern.match("daily")
    assert template["Conditions"]["TrainingScheduleEnabled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TrainingSchedule"}, "disabled"]}]
    }
    events = function["Properties"]["Events"]
    assert {name for name, e in events.items() if e["Type"] == "Schedule"} == {"TrainingSchedule", "ExperimentSchedule"}
    props = events["TrainingSchedule"]["Properties"]
    assert props["State"] == {"Fn::If": ["TrainingScheduleEnabled", "ENABLED", "DISABLED"]}
    assert props["Schedule"]["Fn::If"][1] == {"Ref": "TrainingSchedule"}
    assert json.loads(props["Input"]["Fn::Sub"][0].replace("${Bucket}", "b").replace("${ModelPrefix}", "p")) == {
        "events": "s3://b/p/events/"
    }
    assert PipelineSettings(events="s3://b/p/events/").events == "s3://b/p/events/"
