"""Property test: whatever the body, engine-api answers 2xx/4xx JSON and never crashes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ce_engine import auth
from ce_engine.api import create_app
from ce_engine.config import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from .conftest import DATA_KEY

KEY = "k" * 40
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def client(postgres_url: str) -> Iterator[TestClient]:
    app = create_app(
        Settings(environment="test", database_url=postgres_url, jwt_key=KEY, data_key=DATA_KEY)
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: repr(v).encode())),
    path=st.sampled_from(["/v1/sessions", "/v1/jobs", "/v1/sessions/1/thoughts"]),
)
def test_any_body_gets_a_non_5xx_json_answer(client: TestClient, body: bytes, path: str) -> None:
    headers = {
        "Authorization": f"Bearer {auth.issue(KEY, 'consciousness-engine/test', 'f', 'writer')}",
        "Content-Type": "application/json",
    }
    response = client.post(path, content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert isinstance(response.json(), dict)
