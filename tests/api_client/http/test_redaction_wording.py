"""Redaction removes credentials, not the words around them: server messages stay readable."""

from __future__ import annotations

import pytest
from conftest import TEST_KEY, generate


def test_a_wrong_key_quotes_the_servers_message_as_written(pack, api, standin, monkeypatch):
    wrong = "sk-wrong-0123456789abcdef0123456789ab"
    monkeypatch.setenv("AIML_API_KEY", wrong)
    with pytest.raises(api.AuthenticationError) as caught:
        generate(pack)
    message = str(caught.value)
    assert "The API said: \"Missing or invalid API key: send 'Authorization: Bearer <key>'\"" in message
    assert "*** ***" not in message and wrong not in message and TEST_KEY not in message
    assert caught.value.status_code == 401


@pytest.mark.parametrize(("text", "shown"), [
    # Placeholders and words are not credentials.
    ("send 'Authorization: Bearer <key>'", "send 'Authorization: Bearer <key>'"),
    ("use Authorization: Bearer <YOUR_API_KEY> on each call", "use Authorization: Bearer <YOUR_API_KEY> on each call"),
    ("Authorization: Bearer ***", "Authorization: Bearer ***"),
    # Credentials still go, with the scheme word kept.
    ("Authorization: Bearer sk-abc123def456", "Authorization: Bearer ***"),
    ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
    ("{'Authorization': 'Bearer sk-x1'}", "{'Authorization': 'Bearer ***'}"),
    ("authorization=sk-raw-key", "authorization=***"),
    ("bad api_key=sk-123&x=1", "bad api_key=***&x=1"),
    ('{"token": "abc"}', '{"token": "***"}'),
    ("token=<abc123>", "token=***"),  # digits: not a placeholder
])
def test_redact_keeps_words_and_placeholders(api, text, shown):
    assert api.errors.redact(text) == shown


def test_a_known_key_goes_even_inside_angle_brackets(api):
    assert api.errors.redact(f"got <{TEST_KEY}>", TEST_KEY) == "got <***>"
