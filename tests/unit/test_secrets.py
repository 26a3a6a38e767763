"""A source's secrets (holocron_scrapy.secrets, issue 10): where they may go and how they are
kept out of what is stored and logged. The crawl that proves it end to end is
tests/e2e/test_hostile.py::test_secrets_stay_home_and_are_stored_nowhere."""

from __future__ import annotations

import logging

import pytest

from holocron_scrapy.secrets import RedactingFilter, SourceSecrets

SECRETS = SourceSecrets.of(
    urls=["https://api.example.org/v1/", "https://API.example.org/works"],
    headers={"X-Token": "tok en/1", "Accept": "application/json", "X-Api-Key": "xak-1"},
    params={"api_key": "k3y+val/ue", "mailto": "ops@example.org", "lang": "en"},
    secret_headers={"x-token"},
)


def test_only_the_sources_own_hosts_get_its_secrets() -> None:
    assert SECRETS.own("https://api.example.org/next?page=2")
    assert SECRETS.own("http://api.example.org:8080/")  # the host decides, not scheme or port
    assert not SECRETS.own("https://evil.example.org/api.example.org")
    assert not SECRETS.own("https://example.org/")


def test_the_sources_params_are_no_part_of_a_url_it_keeps() -> None:
    url = "https://api.example.org/w?cursor=abc&api_key=k3y%2Bval%2Fue&mailto=x%40y&q=a%20b"
    assert SECRETS.strip_params(url) == "https://api.example.org/w?cursor=abc&q=a%20b"
    assert SECRETS.strip_params("https://api.example.org/w?q=1") == "https://api.example.org/w?q=1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key k3y+val/ue", "key ***"),
        ("https://x/?api_key=k3y%2Bval%2Fue&p=1", "https://x/?api_key=***&p=1"),
        ("q=k3y%2Bval%2Fue", "q=***"),
        ("tok+en%2F1 and tok%20en/1", "*** and ***"),
        ("xak-1", "***"),  # X-Api-Key: secret by name
        ("ops@example.org application/json en", "ops@example.org application/json en"),
    ],
)
def test_secret_values_are_masked_as_they_are_and_encoded(text: str, expected: str) -> None:
    assert SECRETS.redact(text) == expected


def test_a_json_document_is_masked_in_its_strings_and_keys() -> None:
    doc = {"self": "https://api.example.org/w/1?api_key=k3y%2Bval%2Fue", "n": 3, "l": ["xak-1"]}
    assert SECRETS.redact_json(doc) == {
        "self": "https://api.example.org/w/1?api_key=***",
        "n": 3,
        "l": ["***"],
    }


def test_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.secrets")
    log.addFilter(RedactingFilter(SECRETS))
    with caplog.at_level(logging.INFO):
        log.info("GET %(url)s", {"url": "https://api.example.org/?api_key=k3y%2Bval%2Fue"})
    assert caplog.messages == ["GET https://api.example.org/?api_key=***"]
