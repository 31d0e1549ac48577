"""Where dalp-dr keeps things, and every ``DALP_DR_*`` environment variable.

This module (with its sources, :mod:`dalp_dr.config_sources`) is the only place that reads
a ``DALP_DR_*`` variable or a config file; library code takes the values as parameters or a
:class:`Settings`. Each setting comes from, lowest precedence first: its default, the system
file ``/etc/dalp-dr/config.yaml`` (``DALP_DR_SYSTEM_CONFIG`` names another), the user's
``$XDG_CONFIG_HOME/dalp-dr/config.yaml``, its ``DALP_DR_*`` variable, a flag. A file's keys
are the variables' names without ``DALP_DR_``, in lower case. :data:`VARIABLES` is the
documented table (name, what it does, default), shown by the CLI's help; ``dalp-dr config
show`` prints every effective value and where it came from.

* results directory: ``--results-dir`` / ``DALP_DR_RESULTS`` / ``results`` in a file, else
  ``<project>/results`` (never the current directory, unless it is the project).

* project directory (drills/, playbooks/, inventories/): ``--project-dir`` /
  ``DALP_DR_PROJECT`` / the current directory when it has ``playbooks/``, else the checkout
  this package was installed from.
* checkpoint witness: ``DALP_DR_WITNESS`` (``s3://bucket/prefix``, a bucket with Object
  Lock), ``DALP_DR_WITNESS_RETAIN_DAYS``, ``DALP_DR_WITNESS_LOCK_MODE``;
  ``DALP_DR_S3_ENDPOINT`` for another S3 API
* evidence shipped to S3: ``DALP_DR_EVIDENCE`` (``s3://bucket/prefix``; empty: evidence
  stays in the results directory only), each run under ``<prefix>/<environment>/<run_id>/``
* file modes: evidence, history and checkpoint files are the owner's alone (0600, 0700
  directories); ``DALP_DR_GROUP_ACCESS=1`` lets the owning group read them (0640, 0750)
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from dalp_dr.config_sources import SYSTEM_FILE, Source, key_of, layers
from dalp_dr.durations import parse_duration
from dalp_dr.errors import ConfigError


class EnvVar(StrEnum):
    """Every environment variable dalp-dr reads (described in :data:`VARIABLES`)."""

    RESULTS = "DALP_DR_RESULTS"
    STORE = "DALP_DR_STORE"
    PROJECT = "DALP_DR_PROJECT"
    ALLOWED_DIRS = "DALP_DR_ALLOWED_DIRS"
    LOCK_TTL = "DALP_DR_LOCK_TTL"
    KEYS = "DALP_DR_KEYS"
    KEY_PASSPHRASE = "DALP_DR_KEY_PASSPHRASE"
    WITNESS = "DALP_DR_WITNESS"
    WITNESS_RETAIN_DAYS = "DALP_DR_WITNESS_RETAIN_DAYS"
    WITNESS_LOCK_MODE = "DALP_DR_WITNESS_LOCK_MODE"
    EVIDENCE = "DALP_DR_EVIDENCE"
    S3_ENDPOINT = "DALP_DR_S3_ENDPOINT"
    GROUP_ACCESS = "DALP_DR_GROUP_ACCESS"
    OPERATOR = "DALP_DR_OPERATOR"
    METRICS_TEXTFILE = "DALP_DR_METRICS_TEXTFILE"
    WEBHOOK_URL = "DALP_DR_WEBHOOK_URL"
    SLACK_WEBHOOK_URL = "DALP_DR_SLACK_WEBHOOK_URL"
    DEBUG = "DALP_DR_DEBUG"
    SYSTEM_CONFIG = "DALP_DR_SYSTEM_CONFIG"


def env(variable: EnvVar) -> str | None:
    """The setting's configured value: its variable's, else the user's config file's, else
    the system file's; None when nothing sets it (or sets it empty)."""
    found = layers().get(key_of(variable.value))
    return found.text if found is not None and found.text else None


def _where(variable: EnvVar) -> tuple[str, str | None]:
    """Where a bad value was set, for its error: (the file, its key) or (the variable,
    None)."""
    found = layers().get(key_of(variable.value))
    if found is not None and found.origin.source in (Source.SYSTEM_FILE, Source.USER_FILE):
        return str(found.origin.where), key_of(variable.value)
    return variable.value, None


def _flag(variable: EnvVar) -> bool:
    return (env(variable) or "").strip().lower() not in ("", "0", "false", "no")


def _list(variable: EnvVar, separator: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (env(variable) or "").split(separator)
                 if part.strip())


class Variable(BaseModel, frozen=True):
    """One row of the documented table."""

    name: EnvVar
    description: str
    default: str = ""
    """what applies when it is unset ('' when nothing does)"""


VARIABLES: tuple[Variable, ...] = (
    Variable(name=EnvVar.RESULTS,
             default="<project>/results (no project: ~/.local/share/dalp-dr/results)",
             description="results directory: the evidence of every run (--results-dir)"),
    Variable(name=EnvVar.STORE, default="sqlite:///<results dir>/history.sqlite",
             description="history store URL, sqlite:/// or postgresql:// (--store)"),
    Variable(name=EnvVar.PROJECT, default="the current directory if it has playbooks/",
             description="project directory of drills/, playbooks/, inventories/"),
    Variable(name=EnvVar.ALLOWED_DIRS, default="",
             description="more directories (os.pathsep-separated) for drill files"),
    Variable(name=EnvVar.LOCK_TTL, default="60s",
             description="how long a drill lock outlives its holder's last renewal (>= 3s)"),
    Variable(name=EnvVar.KEYS, default="~/.config/dalp-dr",
             description="signing key directory for bundles and checkpoints (--keys)"),
    Variable(name=EnvVar.KEY_PASSPHRASE, default="",
             description="passphrase that encrypts the private signing key"),
    Variable(name=EnvVar.WITNESS, default="",
             description="checkpoint witness: s3://bucket/prefix, a bucket with Object Lock"),
    Variable(name=EnvVar.WITNESS_RETAIN_DAYS, default="2557",
             description="days each witnessed checkpoint is retained (1-36500)"),
    Variable(name=EnvVar.WITNESS_LOCK_MODE, default="GOVERNANCE",
             description="Object Lock mode of the witness: GOVERNANCE or COMPLIANCE"),
    Variable(name=EnvVar.EVIDENCE, default="",
             description="s3://bucket/prefix each run's evidence is copied to after it is "
                         "recorded (<prefix>/<environment>/<run_id>/, manifest.json last)"),
    Variable(name=EnvVar.S3_ENDPOINT, default="",
             description="endpoint URL of another S3 API (bundle archive, witness, "
                         "evidence)"),
    Variable(name=EnvVar.GROUP_ACCESS, default="0",
             description="1: the owning group may read evidence, history and checkpoints"),
    Variable(name=EnvVar.OPERATOR, default="SUDO_USER, else the OS user",
             description="who runs drills and exports (--operator)"),
    Variable(name=EnvVar.METRICS_TEXTFILE, default="",
             description="node_exporter textfile rewritten after every recorded run"),
    Variable(name=EnvVar.WEBHOOK_URL, default="",
             description="comma-separated URLs that get each run's result as JSON"),
    Variable(name=EnvVar.SLACK_WEBHOOK_URL, default="",
             description="comma-separated Slack webhook URLs for each run's result"),
    Variable(name=EnvVar.DEBUG, default="0",
             description="1: print the traceback of an unexpected exception"),
    Variable(name=EnvVar.SYSTEM_CONFIG, default=str(SYSTEM_FILE),
             description="the system config file (read before $XDG_CONFIG_HOME/dalp-dr/"
                         "config.yaml; not itself a file key)"),
)
"""The documented table of every DALP_DR_* variable, in the order the help shows them."""


class Witness(BaseModel, frozen=True):
    bucket: str
    prefix: str
    retain_days: int = 2557
    lock_mode: str = "GOVERNANCE"
    endpoint_url: str | None = None
    region: str = "us-east-1"


class Evidence(BaseModel, frozen=True):
    """Where runs' evidence is shipped (DALP_DR_EVIDENCE)."""

    bucket: str
    prefix: str
    endpoint_url: str | None = None
    region: str = "us-east-1"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class Settings(BaseModel, frozen=True):
    results_dir: Path
    store_url: str
    project_dir: Path
    lock_ttl: float = 60.0
    """seconds an environment's drill lock outlives its holder's last renewal"""
    keys_dir: Path = Path.home() / ".config" / "dalp-dr"
    witness: Witness | None = None
    evidence: Evidence | None = None
    """DALP_DR_EVIDENCE: the bucket each run's evidence is shipped to (None: local only)"""
    allowed_dirs: tuple[Path, ...] = ()
    s3_endpoint: str | None = None
    operator: str | None = None
    metrics_textfile: Path | None = None
    webhook_urls: tuple[str, ...] = ()
    slack_webhook_urls: tuple[str, ...] = ()
    group_access: bool = False
    debug: bool = False


def aws_region() -> str:
    """The AWS SDK's default region (AWS_DEFAULT_REGION), else us-east-1."""
    return os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def s3_endpoint() -> str | None:
    """DALP_DR_S3_ENDPOINT: another S3 API (the lab's moto server): an http(s) URL with a
    host, ConfigError naming where it was set otherwise."""
    url = env(EnvVar.S3_ENDPOINT)
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) \
            and not any(c.isspace() for c in url)
    except ValueError:  # a port that is no number, an unbalanced [
        usable = False
    if not usable:
        source, field = _where(EnvVar.S3_ENDPOINT)
        raise ConfigError(f"'{url}' is not an http(s) URL of an S3 API", source=source,
                          field=field, hint="e.g. https://s3.example.internal:9000, or unset "
                                            "it for AWS's own endpoints")
    return url


def _witness() -> Witness | None:
    url = env(EnvVar.WITNESS)
    if not url:
        return None
    parts = split_s3_url(url.strip())
    if parts is None:
        raise ConfigError(f"'{url}' is not an s3:// URL", source=_where(EnvVar.WITNESS)[0],
                          field=_where(EnvVar.WITNESS)[1],
                          hint="s3://bucket/prefix of a bucket with Object Lock")
    bucket, prefix = parts
    days_text = env(EnvVar.WITNESS_RETAIN_DAYS) or "2557"
    if not days_text.isdigit() or not 1 <= int(days_text) <= 36500:
        raise ConfigError(f"'{days_text}' is not a number of days (1-36500)",
                          source=_where(EnvVar.WITNESS_RETAIN_DAYS)[0],
                          field=_where(EnvVar.WITNESS_RETAIN_DAYS)[1])
    mode = (env(EnvVar.WITNESS_LOCK_MODE) or "GOVERNANCE").upper()
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise ConfigError(f"'{mode}' is not an Object Lock mode",
                          source=_where(EnvVar.WITNESS_LOCK_MODE)[0],
                          field=_where(EnvVar.WITNESS_LOCK_MODE)[1],
                          hint="GOVERNANCE or COMPLIANCE")
    return Witness(bucket=bucket, prefix=prefix, retain_days=int(days_text),
                   lock_mode=mode, endpoint_url=s3_endpoint(), region=aws_region())


def split_s3_url(url: str) -> tuple[str, str] | None:
    """``s3://bucket/prefix`` as (bucket, prefix without its slashes at either end); None for
    anything else (no bucket, another scheme, white space)."""
    bucket, _, prefix = url[5:].partition("/")
    if not url.startswith("s3://") or not bucket or any(c.isspace() for c in url):
        return None
    return bucket, prefix.strip("/")


def evidence() -> Evidence | None:
    """DALP_DR_EVIDENCE: ``s3://bucket/prefix`` each run's evidence is shipped to; None when
    unset. A value that is not such a URL is a ConfigError naming where it was set."""
    url = env(EnvVar.EVIDENCE)
    if not url:
        return None
    url = url.strip()
    parts = split_s3_url(url)
    if parts is None:
        source, field = _where(EnvVar.EVIDENCE)
        raise ConfigError(f"'{url}' is not an s3:// URL", source=source, field=field,
                          hint="s3://bucket/prefix of a bucket this controller may write to, "
                               "or unset it to keep evidence in the results directory only")
    bucket, prefix = parts
    return Evidence(bucket=bucket, prefix=prefix, endpoint_url=s3_endpoint(),
                    region=aws_region())


def group_access() -> bool:
    """DALP_DR_GROUP_ACCESS: the owning group may read evidence, history and checkpoints."""
    return (env(EnvVar.GROUP_ACCESS) or "").lower() in ("1", "true", "yes")


def debugging() -> bool:
    """DALP_DR_DEBUG: set (to anything but '', 0, false, no) for tracebacks (a config file
    that cannot be read leaves the variable alone to say)."""
    try:
        return _flag(EnvVar.DEBUG)
    except ConfigError:
        return (os.environ.get(EnvVar.DEBUG.value) or "").strip().lower() not in (
            "", "0", "false", "no")


def keys_dir(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    configured = env(EnvVar.KEYS)
    return Path(configured) if configured else Path.home() / ".config" / "dalp-dr"


def key_passphrase() -> bytes | None:
    """DALP_DR_KEY_PASSPHRASE (a secret: read when needed, never kept in Settings)."""
    value = env(EnvVar.KEY_PASSPHRASE)
    return value.encode() if value else None


def project_dir(explicit: str | None = None) -> Path:
    """The project directory (see the module docstring for the order)."""
    if explicit:
        return Path(explicit).resolve()
    configured = env(EnvVar.PROJECT)
    if configured:
        return Path(configured).resolve()
    cwd = Path.cwd()
    if (cwd / "playbooks").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


SHARED_ROLES = "roles"
"""The playbooks' shared roles: ``playbooks/roles`` beside ``playbooks/<topology>/``."""


def ansible_roles_path(playbook_dir: Path) -> tuple[Path, ...]:
    """Where ansible-playbook looks for the roles a playbook in ``playbook_dir`` names, after
    ``roles/`` beside the playbook (Ansible's own first place): the shared roles of the
    playbook tree it belongs to (``playbook_dir/../roles``, so a drill finds its roles
    wherever its project is), the project's ``playbooks/roles`` (for a playbook of one's own
    that imports a shipped one), then the roles path Ansible itself would use
    (ANSIBLE_ROLES_PATH, else ``roles_path`` of the ansible.cfg in effect, else its
    default). Absolute paths: the runner hands them to ansible-playbook, which runs in
    another directory."""
    shared = [playbook_dir.resolve().parent / SHARED_ROLES,
              project_dir() / "playbooks" / SHARED_ROLES]
    configured = os.environ.get("ANSIBLE_ROLES_PATH")
    if configured:
        rest = [Path(os.path.expanduser(p)).resolve() for p in configured.split(os.pathsep) if p]
    else:
        from ansible import constants  # ansible.cfg and Ansible's default (slow import)

        rest = [Path(p) for p in constants.DEFAULT_ROLES_PATH]
    return tuple(dict.fromkeys([p for p in shared if p.is_dir()] + rest))


def allowed_dirs() -> tuple[Path, ...]:
    """DALP_DR_ALLOWED_DIRS: more directories a drill's files may live in."""
    return tuple(Path(p).resolve() for p in _list(EnvVar.ALLOWED_DIRS, os.pathsep))


def operator() -> str | None:
    """DALP_DR_OPERATOR: who runs drills and exports, when no --operator is given."""
    value = env(EnvVar.OPERATOR)
    return value.strip() if value and value.strip() else None


def metrics_textfile() -> Path | None:
    """DALP_DR_METRICS_TEXTFILE: the node_exporter textfile written after each run."""
    value = env(EnvVar.METRICS_TEXTFILE)
    return Path(value) if value else None


def webhook_urls() -> tuple[str, ...]:
    """DALP_DR_WEBHOOK_URL: generic JSON webhooks (comma-separated)."""
    return _list(EnvVar.WEBHOOK_URL, ",")


def slack_webhook_urls() -> tuple[str, ...]:
    """DALP_DR_SLACK_WEBHOOK_URL: Slack incoming webhooks (comma-separated)."""
    return _list(EnvVar.SLACK_WEBHOOK_URL, ",")


def _lock_ttl() -> float:
    text = env(EnvVar.LOCK_TTL)
    if not text:
        return 60.0
    try:
        lock_ttl = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise ConfigError(str(exc), source=_where(EnvVar.LOCK_TTL)[0],
                          field=_where(EnvVar.LOCK_TTL)[1],
                          hint="a duration such as 60s or 5m") from None
    if lock_ttl < 3:
        raise ConfigError("must be at least 3s (the lock is renewed every third of it)",
                          source=_where(EnvVar.LOCK_TTL)[0],
                          field=_where(EnvVar.LOCK_TTL)[1])
    return lock_ttl


STORE_SCHEMES = ("sqlite://", "postgresql://", "postgres://")
"""the history stores dalp-dr opens (dalp_dr.history.open_store)"""


def default_results_dir(project: Path) -> Path:
    """The project's results/ when the project is one (it has playbooks/); else, for an
    installed package with no project around it, the user's data directory
    ($XDG_DATA_HOME/dalp-dr/results): never beside site-packages, never the current
    directory."""
    if (project / "playbooks").is_dir():
        return project / "results"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "dalp-dr" / "results"


_resolve_project = project_dir  # load_settings' parameter shadows the function's name


def load_settings(*, results_dir: str | None = None, store: str | None = None,
                  project_dir: str | None = None, keys: str | None = None) -> Settings:
    project = _resolve_project(project_dir)
    results = Path(results_dir or env(EnvVar.RESULTS) or default_results_dir(project)
                   ).resolve()
    url = store or env(EnvVar.STORE) or f"sqlite:///{results / 'history.sqlite'}"
    if not url.startswith(STORE_SCHEMES):
        where = _where(EnvVar.STORE)
        source, field = ((None, "--store") if store else where if where[1] is not None
                         else (None, where[0]))  # a flag or a variable is a field, no file
        raise ConfigError(f"unsupported history store URL {url.split('://')[0]}://...",
                          source=source, field=field,
                          hint="sqlite:///path/to/history.sqlite or postgresql://...")
    return Settings(results_dir=results, store_url=url,
                    project_dir=project, lock_ttl=_lock_ttl(),
                    keys_dir=keys_dir(keys), witness=_witness(), evidence=evidence(),
                    allowed_dirs=allowed_dirs(),
                    s3_endpoint=s3_endpoint(), operator=operator(),
                    metrics_textfile=metrics_textfile(), webhook_urls=webhook_urls(),
                    slack_webhook_urls=slack_webhook_urls(), group_access=group_access(),
                    debug=debugging())
