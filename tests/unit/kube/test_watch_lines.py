"""A watch line that is not a watch event is an apiserver (or proxy) fault the informer
retries, not an exception that ends the cache (issue #13)."""

from __future__ import annotations

import pytest

from openelb.kube import client, errors


@pytest.mark.parametrize("line", [b"{not json", b"[1, 2]", b'"text"',
                                  b'{"type": "ADDED", "object": [1]}'])
def test_a_malformed_line_is_retryable(line: bytes) -> None:
    with pytest.raises(errors.Retryable, match="not a watch event"):
        client.Kube._watch_event(line)


def test_an_error_event_keeps_its_status() -> None:
    line = b'{"type": "ERROR", "object": {"code": 410, "message": "too old"}}'
    with pytest.raises(errors.Gone):
        client.Kube._watch_event(line)


def test_a_good_line_is_an_event() -> None:
    event = client.Kube._watch_event(b'{"type": "MODIFIED", "object": {"metadata": {}}}')
    assert (event.type, event.object) == ("MODIFIED", {"metadata": {}})
