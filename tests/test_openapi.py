"""The API against its own OpenAPI document: a bounded, seeded schemathesis run against
the real server process. No answer is a server error, every status is documented, and
every body and content type is the one documented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TOKEN
from tests.server import Server

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 10  # per operation and mode: a fixed budget (~360 requests, well under two minutes)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Reproducible: the same cases every run (derandomize), no shrinking (its time is unbounded).
BOUNDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                   phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("openapi")
    # No rate limit: the run sends hundreds of requests a minute from one address.
    server = Server(work / "data", work / "server.log", VIDPROD_RATE_LIMIT="0").start()
    yield server
    server.stop()


def _run(operation, mode: GenerationMode, base_url: str, sent: list[str]) -> list[str]:
    """Send one operation's cases; its first failure, in words."""
    found: list[str] = []

    @BOUNDED
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:  # type: ignore[no-untyped-def]
        sent.append(operation.label)
        try:
            case.call_and_validate(base_url=base_url, headers={**AUTH, **(case.headers or {})}, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001 - a failed check or a dropped connection
            if not found:
                found.append(f"{operation.label} [{mode.value}]: {exc}"[:1500])

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong: no parameters, no body
        assert mode is GenerationMode.NEGATIVE, operation.label
    return found


def test_every_answer_is_documented_and_none_is_a_server_error(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    sent: list[str] = []
    failures = [
        failure
        for operation in operations
        for mode in GenerationMode
        for failure in _run(operation, mode, server.url, sent)
    ]
    assert failures == [], "\n\n".join(failures)
    assert len(sent) > 250 and len(set(sent)) == len(operations), "every operation was sent its cases"
    log = server.log_path.read_text(errors="replace")
    assert "unhandled error" not in log, log[-5000:]


def test_the_document_lists_the_problems_each_route_answers(server):
    paths = server.client.get("/schema/openapi.json").json()["paths"]
    documented = lambda path, method: set(paths[path][method]["responses"])  # noqa: E731
    assert {"202", "400", "401", "408", "413", "415", "422", "429", "507"} <= documented("/upload", "post")
    assert {"202", "401", "404", "409"} <= documented("/jobs/{job_id}/cancel", "post")
    assert {"400", "401", "404", "409", "410", "412", "413", "415", "423", "460", "507"} <= documented("/tus/{upload_id}", "patch")
    assert {"200", "503"} == documented("/health", "get")
    options = paths["/tus"]["options"]["responses"]
    assert "content" not in options["204"], "OPTIONS /tus answers 204 with no body"
    assert not any(status.startswith("2") and status != "204" for status in options)
    assert paths["/jobs/{job_id}/cancel"]["post"]["responses"]["409"]["content"]["application/problem+json"]
    assert not any(path.startswith(("/videos", "/signin", "/settings", "/metrics")) for path in paths)
