"""The CLI's words for what library errors point at: option names for :class:`Flag` and the
text of every :class:`HintKey`, with the real commands and flags.

``install()`` makes every error read this way (``str(exc)``); ``hint_text(exc)`` is the
hint alone, for a printer that shows it apart. Library code never spells a command line:
renaming an option or a command changes this table only.
"""

from __future__ import annotations

from types import MappingProxyType

from dalp_dr.errors import DalpDrError, Flag, Hint, HintKey, InvalidInput, use_renderer

FLAG_NAMES = MappingProxyType({
    Flag.TO_S3: "--to-s3",
    Flag.KEYS: "--keys",
    Flag.KEYS_INIT: "keys init",
    Flag.BUNDLE: "--bundle",
    Flag.FINGERPRINT: "--fingerprint",
    Flag.PERIOD: "--from/--to",
    Flag.DRILL: "--drill",
    Flag.ENVIRONMENT: "--environment",
})
"""the command-line option (or command) each Flag is"""

HINT_TEXTS = MappingProxyType({
    HintKey.S3_URL: "s3://bucket/prefix",
    HintKey.OBJECT_LOCK_BUCKET: "use a bucket created with Object Lock, or "
                                "--force-without-lock",
    HintKey.REPLACE_SIGNING_KEY: "bundles it signed verify only with its public key; pass "
                                 "--force to replace it anyway",
    HintKey.CREATE_SIGNING_KEY: "create one with 'dalp-dr keys init'",
    HintKey.FINGERPRINT_FORMAT: "SHA256: and 43 base64 characters, as 'dalp-dr keys init' "
                                "prints it",
    HintKey.PERIOD_ORDER: "--from must be before --to",
    HintKey.KNOWN_VALUES: "known: {known}",
    HintKey.PIN_HISTORY: "'dalp-dr history checkpoint --sign' pins a history sealed before "
                         "its key existed",
    HintKey.VERIFY_HISTORY: "see 'dalp-dr history verify'",
    HintKey.LIST_DRILLS: "check the path; 'dalp-dr drill list' shows known drills",
    HintKey.VAULT_PASSWORD_FILE: "--vault-id label@FILE, --vault-password-file FILE or "
                                 "ANSIBLE_VAULT_PASSWORD_FILE must name a readable file",
    HintKey.VAULT_PASSWORD: "give its vault password: --vault-id, --vault-password-file or "
                            "ANSIBLE_VAULT_PASSWORD_FILE",
    HintKey.S3_ENDPOINT: "check dalp_s3_endpoint_url; for the lab: dalp-dr lab up hot-cold",
    HintKey.BUNDLE_FORMAT: "a directory, or a .tar.gz as 'dalp-dr export --bundle' writes it",
    HintKey.VALIDATE_DRILL: "fix the definition ('dalp-dr drill validate')",
    HintKey.ENDPOINT_UNREACHABLE: "run doctor where the endpoint answers (for the lab: "
                                  "dalp-dr lab up)",
    HintKey.SET_UP_SIGNING: "dalp-dr keys init (then 'dalp-dr history checkpoint --sign' for "
                            "a history sealed before)",
    HintKey.START_HOT_COLD_LAB: "dalp-dr lab up hot-cold",
    HintKey.STORE_UNUSABLE: "check DALP_DR_STORE; 'dalp-dr store migrate' for an older schema",
    HintKey.ENVIRONMENT_UP: "is the environment up? for the lab: dalp-dr lab up {topology}",
    HintKey.DRILL_RECOVER: "'dalp-dr drill recover {run_id}'",
    HintKey.CHECK_ENVIRONMENT: "check 'dalp-dr lab status' or the environment before the "
                               "next drill",
    HintKey.LIST_RUNS: "'dalp-dr history list' shows run ids",
    HintKey.MIGRATE_STORE: "run 'dalp-dr store migrate' once (other dalp-dr processes on "
                           "this store should be upgraded too)",
    HintKey.INSTALL_TOOL: "install it: pip install '{package}'",
})
"""the text of each hint; ``{name}`` is filled from the hint's parameters"""


class CliRenderer:
    """Flags and hints as the CLI says them."""

    def flag(self, flag: Flag) -> str:
        return FLAG_NAMES[flag]

    def hint(self, hint: Hint) -> str:
        return HINT_TEXTS[hint.key].format_map(hint.params)


RENDERER = CliRenderer()


def flag_name(flag: Flag) -> str:
    return RENDERER.flag(flag)


def hint_text(exc: DalpDrError) -> str | None:
    """What to do about ``exc`` in the CLI's words: its hint key's text, else its plain-text
    hint (InvalidInput), else None."""
    if exc.hint_ref is not None:
        return RENDERER.hint(exc.hint_ref)
    if isinstance(exc, InvalidInput):
        return exc.hint
    return None


def install() -> None:
    """Every dalp-dr error reads in the CLI's words from now on."""
    use_renderer(RENDERER)
