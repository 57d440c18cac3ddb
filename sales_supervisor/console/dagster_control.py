"""Override controls that act on the running Dagster instance, through Dagster's own GraphQL API.

Pausing the schedule or the approval sensor and forcing a run must reach the daemon and webserver
that `make dev` (dagster dev) runs, so the console calls their GraphQL endpoint with
dagster-graphql's client (job submission) and the schedule/sensor mutations of the same schema.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlparse

SCHEDULE_NAME = "weekday_morning"
SENSOR_NAME = "approval_sensor"
DAILY_JOB = "daily_supervisor_job"
REPOSITORY = "__repository__"

_SCHEDULE_STATE = """
query ScheduleState($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule { name scheduleState { id status } }
    ... on PythonError { message }
    ... on ScheduleNotFoundError { message }
  }
}"""
_SENSOR_STATE = """
query SensorState($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { name sensorState { id status } }
    ... on PythonError { message }
    ... on SensorNotFoundError { message }
  }
}"""
_START_SCHEDULE = """
mutation StartSchedule($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on PythonError { message }
  }
}"""
_STOP_SCHEDULE = """
mutation StopSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on PythonError { message }
  }
}"""
_START_SENSOR = """
mutation StartSensor($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { id status } }
    ... on PythonError { message }
  }
}"""
_STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { id status } }
    ... on PythonError { message }
  }
}"""


class DagsterUnavailable(RuntimeError):
    """The Dagster webserver did not answer, or answered with an error."""


@dataclasses.dataclass(frozen=True)
class DagsterControl:
    url: str = "http://127.0.0.1:3000"
    location: str = "orchestration.definitions"
    timeout: int = 10

    def _client(self):
        from dagster_graphql import DagsterGraphQLClient

        parsed = urlparse(self.url)
        return DagsterGraphQLClient(
            parsed.hostname or "127.0.0.1", port_number=parsed.port, use_https=parsed.scheme == "https", timeout=self.timeout,
        )

    def _execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return self._client()._execute(query, variables or {})
        except DagsterGraphQLClientError as exc:
            raise DagsterUnavailable(f"Dagster at {self.url} did not answer: {exc}") from None
        except Exception as exc:  # connection refused, timeouts: gql wraps them in several types
            raise DagsterUnavailable(f"Dagster at {self.url} did not answer ({type(exc).__name__}: {exc})") from None

    def _selector(self, key: str, name: str) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": REPOSITORY, key: name}

    @staticmethod
    def _check(result: dict[str, Any], field: str) -> dict[str, Any]:
        data = result.get(field) or {}
        if data.get("__typename") in ("PythonError", "ScheduleNotFoundError", "SensorNotFoundError", "UnauthorizedError"):
            raise DagsterUnavailable(f"Dagster refused: {data.get('message') or data['__typename']}")
        return data

    def schedule_status(self) -> tuple[str, str]:
        """(status RUNNING|STOPPED, instigation state id)."""
        data = self._check(self._execute(_SCHEDULE_STATE, {"selector": self._selector("scheduleName", SCHEDULE_NAME)}), "scheduleOrError")
        state = data["scheduleState"]
        return state["status"], state["id"]

    def sensor_status(self) -> tuple[str, str]:
        data = self._check(self._execute(_SENSOR_STATE, {"selector": self._selector("sensorName", SENSOR_NAME)}), "sensorOrError")
        state = data["sensorState"]
        return state["status"], state["id"]

    def set_schedule(self, running: bool) -> str:
        if running:
            data = self._check(self._execute(_START_SCHEDULE, {"selector": self._selector("scheduleName", SCHEDULE_NAME)}), "startSchedule")
        else:
            _, state_id = self.schedule_status()
            data = self._check(self._execute(_STOP_SCHEDULE, {"id": state_id}), "stopRunningSchedule")
        return data["scheduleState"]["status"]

    def set_sensor(self, running: bool) -> str:
        if running:
            data = self._check(self._execute(_START_SENSOR, {"selector": self._selector("sensorName", SENSOR_NAME)}), "startSensor")
            return data["sensorState"]["status"]
        _, state_id = self.sensor_status()
        data = self._check(self._execute(_STOP_SENSOR, {"id": state_id}), "stopSensor")
        return data["instigationState"]["status"]

    def run_now(self, job: str = DAILY_JOB) -> str:
        """Submit ``job`` to the running instance (its run queue and launcher); returns the run id."""
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return self._client().submit_job_execution(job, repository_location_name=self.location, repository_name=REPOSITORY)
        except DagsterGraphQLClientError as exc:
            raise DagsterUnavailable(f"Dagster did not start {job}: {exc}") from None
        except Exception as exc:
            raise DagsterUnavailable(f"Dagster at {self.url} did not answer ({type(exc).__name__}: {exc})") from None
