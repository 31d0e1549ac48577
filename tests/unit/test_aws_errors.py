"""One table sorts every boto3/botocore error; the S3 and RDS adapters agree on what a
refused call is."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from dalp_dr import object_store
from dalp_dr.adapters.aws_errors import (
    NOT_FOUND_CODES,
    REFUSED_CODES,
    AwsErrorKind,
    classify,
)
from dalp_dr.errors import ManagedDbError, TargetUnreachable
from dalp_dr.managed.base import translate


def client_error(code: str, message: str = "said the API") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "PutObject")


@pytest.mark.parametrize("code", sorted(REFUSED_CODES))
def test_every_refused_code_is_refused(code: str) -> None:
    error = classify(client_error(code))
    assert error.kind is AwsErrorKind.REFUSED and error.code == code
    assert isinstance(translate(client_error(code), "DescribeDBInstances db"),
                      TargetUnreachable)


@pytest.mark.parametrize(("exc", "kind"), [
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), AwsErrorKind.UNREACHABLE),
    (NoCredentialsError(), AwsErrorKind.UNREACHABLE),
    (client_error("NoSuchBucket"), AwsErrorKind.NO_BUCKET),
    (client_error("NoSuchKey"), AwsErrorKind.NOT_FOUND),
    (client_error("404"), AwsErrorKind.NOT_FOUND),
    (client_error("SlowDown"), AwsErrorKind.FAILED),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), AwsErrorKind.FAILED),
])
def test_errors_are_sorted_by_kind(exc: Exception, kind: AwsErrorKind) -> None:
    assert classify(exc).kind is kind


def test_the_hosts_script_and_the_controller_share_the_not_found_codes() -> None:
    assert NOT_FOUND_CODES == frozenset(object_store.NOT_FOUND) >= {"404", "NoSuchKey"}


def test_managed_errors_keep_the_code_and_message() -> None:
    other = translate(client_error("DBInstanceNotFound", "no such instance"),
                      "DescribeDBInstances db")
    assert isinstance(other, ManagedDbError)
    assert str(other) == "DescribeDBInstances db: DBInstanceNotFound: no such instance"
    unreachable = translate(NoCredentialsError(), "DescribeDBInstances db")
    assert isinstance(unreachable, TargetUnreachable)
    assert "credentials" in str(unreachable)
    plain = ValueError("not boto")
    assert translate(plain, "x") is plain
