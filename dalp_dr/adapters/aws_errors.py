"""The one translation of boto3/botocore errors (like httpx's mapping of transport errors).

Every AWS error is first sorted into an :class:`AwsErrorKind` by one table of error codes;
each adapter then says which dalp-dr error each kind is for it (an unreachable bucket is
invalid input for a backup check, a refused RDS call for a managed database).
``dalp_dr.object_store`` runs alone on database hosts (it imports nothing of dalp-dr): the
not-found codes are its own, taken from it.
"""

from __future__ import annotations

from enum import StrEnum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from pydantic import BaseModel

from dalp_dr import object_store
from dalp_dr.errors import DalpDrError, Flag, HintKey, ObjectStoreError, TargetUnreachable


class AwsErrorKind(StrEnum):
    UNREACHABLE = "unreachable"
    """no connection to the endpoint, or no credentials to send"""
    REFUSED = "refused"
    """the credentials or permissions were refused"""
    NO_BUCKET = "no bucket"
    """the bucket does not exist"""
    NOT_FOUND = "not found"
    """the object (or other resource) does not exist"""
    FAILED = "failed"
    """anything else the API or the SDK reported"""


REFUSED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "AllAccessDisabled", "ExpiredToken",
    "InvalidAccessKeyId", "InvalidClientTokenId", "SignatureDoesNotMatch",
    "UnrecognizedClientException", "403",
})
NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
NOT_FOUND_CODES = frozenset(object_store.NOT_FOUND)

BOTO_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
"""every error boto3 raises about a call (for ``except``; then :func:`classify`)"""


class AwsError(BaseModel, frozen=True):
    """What an AWS error was: its kind, the API's error code (if any) and its message."""

    kind: AwsErrorKind
    code: str = ""
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


def object_store_error(exc: BaseException, where: str, what: str, *,
                       unreachable: frozenset[AwsErrorKind] = frozenset(),
                       flag: Flag | None = None,
                       hint_key: HintKey | None = None) -> DalpDrError:
    """An S3 error about ``where`` (a bucket or location) while doing ``what``: a lost
    connection, or a kind in ``unreachable`` (refused credentials, a missing bucket), is
    TargetUnreachable (nothing to act on); anything else is ObjectStoreError."""
    error = classify(exc)
    if error.kind is AwsErrorKind.UNREACHABLE:
        return TargetUnreachable(f"{where}: object storage unreachable: {exc}", flag=flag,
                                 hint_key=hint_key)
    if error.kind in unreachable:
        return TargetUnreachable(f"{where}: {error.code}: {error.message}", flag=flag,
                                 hint="check the bucket name and credentials")
    return ObjectStoreError(f"{where}: {what}: {exc}")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def classify(exc: BaseException) -> AwsError:
    """What a boto3/botocore error (see :data:`BOTO_ERRORS`) was; any other exception is
    FAILED."""
    if isinstance(exc, EndpointConnectionError | NoCredentialsError):
        return AwsError(kind=AwsErrorKind.UNREACHABLE, message=str(exc))
    if isinstance(exc, ClientError):
        code = error_code(exc)
        kind = (AwsErrorKind.REFUSED if code in REFUSED_CODES else
                AwsErrorKind.NO_BUCKET if code in NO_BUCKET_CODES else
                AwsErrorKind.NOT_FOUND if code in NOT_FOUND_CODES else AwsErrorKind.FAILED)
        return AwsError(kind=kind, code=code,
                        message=str(exc.response.get("Error", {}).get("Message") or exc))
    return AwsError(kind=AwsErrorKind.FAILED, message=str(exc))
