"""The console's Dagster controls: the GraphQL documents are valid against Dagster's own schema (the version
installed), and the client drives a local server speaking GraphQL over HTTP the way the webserver does."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from sales_supervisor.console import dagster_control as dc
from tests.fakes.local_http import serve_locally, shut_down


@pytest.mark.parametrize("name", ["_SCHEDULE_STATE", "_SENSOR_STATE", "_START_SCHEDULE", "_STOP_SCHEDULE", "_START_SENSOR", "_STOP_SENSOR"])
def test_documents_validate_against_dagsters_schema(name):
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    errors = validate(schema, parse(getattr(dc, name)))
    assert not errors, [e.message for e in errors]


class FakeDagsterWebserver(BaseHTTPRequestHandler):
    state = {"schedule": "STOPPED", "sensor": "STOPPED"}
    requests: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        assert self.path == "/graphql"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        q, v = body["query"], body.get("variables") or {}
        FakeDagsterWebserver.requests.append((q.split("(")[0].strip(), v))
        st = FakeDagsterWebserver.state
        if "query ScheduleState" in q:
            data = {"scheduleOrError": {"__typename": "Schedule", "name": v["selector"]["scheduleName"], "scheduleState": {"id": "sched-1", "status": st["schedule"]}}}
        elif "query SensorState" in q:
            data = {"sensorOrError": {"__typename": "Sensor", "name": "approval_sensor", "sensorState": {"id": "sens-1", "status": st["sensor"]}}}
        elif "mutation StartSchedule" in q:
            st["schedule"] = "RUNNING"
            data = {"startSchedule": {"__typename": "ScheduleStateResult", "scheduleState": {"id": "sched-1", "status": "RUNNING"}}}
        elif "mutation StopSchedule" in q:
            assert v["id"] == "sched-1"
            st["schedule"] = "STOPPED"
            data = {"stopRunningSchedule": {"__typename": "ScheduleStateResult", "scheduleState": {"id": "sched-1", "status": "STOPPED"}}}
        elif "mutation StartSensor" in q:
            st["sensor"] = "RUNNING"
            data = {"startSensor": {"__typename": "Sensor", "sensorState": {"id": "sens-1", "status": "RUNNING"}}}
        elif "mutation StopSensor" in q:
            st["sensor"] = "STOPPED"
            data = {"stopSensor": {"__typename": "StopSensorMutationResult", "instigationState": {"id": "sens-1", "status": "STOPPED"}}}
        elif "launchPipelineExecution" in q:
            assert v["executionParams"]["selector"]["pipelineName"] == "daily_supervisor_job"
            data = {"launchPipelineExecution": {"__typename": "LaunchRunSuccess", "run": {"runId": "run-42"}}}
        else:
            data = None
        raw = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def test_pause_resume_and_run_now_through_graphql():
    httpd, _ = serve_locally(FakeDagsterWebserver, "fake-dagster")
    try:
        control = dc.DagsterControl(f"http://127.0.0.1:{httpd.server_address[1]}")
        assert control.schedule_status() == ("STOPPED", "sched-1")
        assert control.set_schedule(True) == "RUNNING"
        assert control.set_schedule(False) == "STOPPED"
        assert control.set_sensor(True) == "RUNNING"
        assert control.set_sensor(False) == "STOPPED"
        assert control.run_now() == "run-42"
        ops = [name for name, _ in FakeDagsterWebserver.requests]
        assert ops == ["query ScheduleState", "mutation StartSchedule", "query ScheduleState", "mutation StopSchedule",
                       "mutation StartSensor", "query SensorState", "mutation StopSensor", "mutation GraphQLClientSubmitRun"]
    finally:
        shut_down(httpd)


def test_an_unreachable_dagster_is_a_clear_error():
    control = dc.DagsterControl("http://127.0.0.1:9", timeout=2)
    with pytest.raises(dc.DagsterUnavailable, match="did not answer"):
        control.schedule_status()
    with pytest.raises(dc.DagsterUnavailable):
        control.run_now()
