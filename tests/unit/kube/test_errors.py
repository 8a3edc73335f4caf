"""kube/errors.from_status: an apiserver asking to slow down is listened to (issue #13)."""

from __future__ import annotations

import pytest

from openelb.kube import errors

THROTTLED = b'{"kind":"Status","reason":"TooManyRequests","message":"please slow down"}'


@pytest.mark.parametrize(("header", "after"), [
    ("7", 7.0), ("0.5", 0.5), (None, 1.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0),
    ("-3", 0.0), ("1e9", errors.MAX_RETRY_AFTER), ("nan", 1.0),
], ids=["seconds", "fraction", "absent", "http-date", "negative", "huge", "nan"])
def test_retry_after_sets_when_to_try_again(header: str | None, after: float) -> None:
    error = errors.from_status(429, THROTTLED, header)
    assert isinstance(error, errors.Retryable)
    assert error.after == after
    assert error.reason == "TooManyRequests"
