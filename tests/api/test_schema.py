"""Schemathesis against the OpenAPI schema: requests generated from it find no server errors, and every response
(status, content type, body) is the one the schema documents.

Left out: the check that every schema-valid request is accepted. A window whose end is before its start, or
longer than the store's maximum span, is valid per parameter but refused with a 400 that names the argument.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.api.conftest import LINE_ID, OPERATOR, LiveServer, demo_settings
from tests.conftest import MIXED_LINE


def test_generated_requests_find_no_server_errors(tmp_path: Path) -> None:
    with LiveServer(demo_settings(tmp_path), line=MIXED_LINE) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
        # the stream never ends: it is tested on its own (test_stream.py)
        schema = schema.exclude(path_regex=r"/stream$")
        tested = []
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                if case.path_parameters and "line" in case.path_parameters:
                    # a random line id only meets the 404 check: aim the generated queries at the line served
                    case.path_parameters["line"] = LINE_ID
                case.call_and_validate(headers={"X-API-Key": OPERATOR}, excluded_checks=[positive_data_acceptance])

            check()
            tested.append(operation.label)
        assert len(tested) >= 12, tested
