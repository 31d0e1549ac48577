"""Finding 10: credentials the redactor did not know by value still never reach logs,
evidence or exports, whatever form they are written in (URL userinfo with an empty user,
JSON, Python repr, YAML, libpq conninfo, query strings, headers), and the text around them
stays readable."""

from __future__ import annotations

import json

import pytest

from dalp_dr.redact import MASK, Redactor

PW = "Hunter2-xyzzy"
"""never given to the Redactor: only the form of the text can give it away"""

FORMS = [
    # (text containing PW, what must survive around it)
    (f"postgresql://:{PW}@db.example:5432/app", ["postgresql://", "@db.example:5432/app"]),
    (f"postgresql://app:{PW}@db.example/app", ["postgresql://app:", "@db.example/app"]),
    (f"postgres://app:p@ss{PW}@db.example/app", ["postgres://app:", "@db.example/app"]),
    (f"could not connect to redis://:{PW}@cache:6379/0 (refused)",
     ["could not connect to redis://", "@cache:6379/0 (refused)"]),
    (f'{{"user": "app", "password": "{PW}", "port": 5432}}', ['"user": "app"', '"port": 5432']),
    (f'{{"user":"app","password":"{PW}"}}', ['"user":"app"']),
    (f'{{"db_password": "a\\"b{PW}", "host": "h"}}', ['"host": "h"']),
    (f"{{'user': 'app', 'password': '{PW}', 'port': 5432}}", ["'user': 'app'", "'port': 5432"]),
    (f"error in {{'secret': '{PW}'}} while loading", ["error in", "while loading"]),
    (f"host=db port=5432 password={PW} dbname=app", ["host=db port=5432", "dbname=app"]),
    (f"host=db password = '{PW} with spaces' dbname=app", ["host=db", "dbname=app"]),
    (f"PGPASSWORD={PW} psql -h db", ["psql -h db"]),
    (f"export AWS_SECRET_ACCESS_KEY={PW}", ["export AWS_SECRET_ACCESS_KEY="]),
    (f"dalp_s3_secret_access_key: {PW}\nregion: eu-west-1", ["region: eu-west-1"]),
    (f"api_key={PW}&region=eu", ["api_key="]),
    (f"https://hooks.example/x?token={PW}", ["https://hooks.example/x?token="]),
    (f'"auth_token": "{PW}"', ['"auth_token": ']),
    (f"x-api-key: {PW}", ["x-api-key: "]),
    (f"Authorization: Bearer {PW}", ["Authorization: "]),
    (f'stdout: {{\\"password\\": \\"{PW}\\", \\"ok\\": true}}', ["stdout:", '\\"ok\\": true']),
    (f"private_key = {PW}", ["private_key = "]),
]


@pytest.mark.parametrize(("text", "kept"), FORMS, ids=[f[0][:40] for f in FORMS])
def test_credential_forms_are_masked_and_the_rest_stays_readable(text: str,
                                                                 kept: list[str]) -> None:
    clean = Redactor().text(text)
    assert PW not in clean and PW[:6] not in clean, clean
    assert MASK in clean
    for part in kept:
        assert part in clean, (part, clean)


def test_json_stays_json_when_a_secret_named_key_holds_a_number() -> None:
    """result.json is redacted as text: masking must not make it unreadable."""
    text = json.dumps({"report": {"dalp_token_ttl": 1234, "api_key": None, "password": "x" * 9,
                                  "secret": True, "n": 3}}, indent=2)
    clean = Redactor().text(text)
    loaded = json.loads(clean)
    assert loaded["report"] == {"dalp_token_ttl": MASK, "api_key": None, "password": MASK,
                                "secret": True, "n": 3}


def test_structures_are_masked_by_key_name() -> None:
    """Ansible events and journal bodies are scrubbed as structures: a value under a
    secret-named key is masked even though the value itself looks like nothing."""
    event = {"res": {"login_password": PW, "api_key": 42, "token": None, "changed": False,
                     "nested": [{"client_secret": PW}], "msg": "ok"}}
    clean = Redactor().scrub(event)
    assert PW not in json.dumps(clean)
    assert clean["res"]["api_key"] == MASK and clean["res"]["token"] is None
    assert clean["res"]["changed"] is False and clean["res"]["msg"] == "ok"


@pytest.mark.parametrize("text", [
    "password authentication failed for user \"app\"",
    "FATAL:  password authentication failed",
    "http://db.example:5432/app",
    "mailto:ops@example.com",
    "no secret here: 42 writes acknowledged",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


@pytest.mark.parametrize("text", [
    "token" * 40_000,
    "a://b:" * 40_000,
    "x://:" + "p" * 200_000,
    '"' + "secret_" * 30_000,
    "password=" * 25_000,
    '"password": "' * 15_000,
    "Authorization: " * 15_000,
], ids=["names", "schemes", "long-userinfo", "unterminated-key", "pairs", "json-pairs",
        "headers"])
def test_redaction_takes_linear_time_on_hostile_text(text: str) -> None:
    """Evidence files are whatever a target wrote: no text makes redaction crawl."""
    import time

    started = time.perf_counter()
    Redactor([PW]).text(text)
    assert time.perf_counter() - started < 2.0
