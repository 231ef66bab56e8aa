"""The access log never carries a secret from a query string."""

import logging

import pytest

from gateway.access_log import REDACTED, RedactQuerySecrets, redact_path


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/admin/export/ds-1?format=csv&token=s3cret", f"/admin/export/ds-1?format=csv&token={REDACTED}"),
        ("/ws/workbench?since=42", "/ws/workbench?since=42"),
        ("/?login=abc&api_key=k", f"/?login={REDACTED}&api_key={REDACTED}"),
        ("/admin/datasets", "/admin/datasets"),
    ],
)
def test_secret_named_query_values_are_blanked(path: str, logged: str) -> None:
    assert redact_path(path) == logged


def test_the_filter_rewrites_uvicorns_access_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/admin/datasets?token=s3cret", "1.1", 401),
        None,
    )

    assert RedactQuerySecrets().filter(record)
    assert "s3cret" not in record.getMessage()
