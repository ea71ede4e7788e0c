"""schemathesis over the app's OpenAPI schema: generated requests, with and without the token, no 5xx."""

from __future__ import annotations

import schemathesis
from conftest import AUTH, Api
from hypothesis import HealthCheck, given, settings


def test_no_generated_request_gets_a_server_error(api: Api) -> None:
    api.feed(0, 9)  # positions and working orders, so commands act on something real
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        checked.append(f"{operation.method.upper()} {operation.path}")

        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def no_5xx(case: schemathesis.Case) -> None:
            for headers in (None, AUTH):
                response = case.call(headers=headers)
                assert response.status_code < 500, (case.method, case.path, case.body, response.text)

        no_5xx()
    assert {"POST /mode", "POST /flatten", "GET /status"} <= set(checked)
