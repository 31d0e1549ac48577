"""``dalp-dr export``: the sealed history of a period as json/csv/html or a signed bundle
(optionally archived to S3 under Object Lock), and ``export verify`` for a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from dalp_dr.commands.output import Format, Output, output_options, resolve
from dalp_dr.commands.shared import EXIT_FAILED, Exit, keys_dir_of, settings_of
from dalp_dr.commands.shared import report as report_line
from dalp_dr.console import err
from dalp_dr.errors import InvalidInput
from dalp_dr.spec import Topology, discover_drills, load_drill
from dalp_dr.timefmt import format_time

if TYPE_CHECKING:
    from dalp_dr.export.records import Query

EXPORT_FORMATS = (Format.JSON, Format.CSV, Format.HTML, Format.PDF)
BUNDLE_FORMATS = (Format.TABLE, Format.JSON)
"""with --bundle, -o says how the bundle written is reported"""


def _export_drills(ctx: click.Context, query: Query) -> list[str]:
    """Drills defined in the project that the query covers ('not run' cells for them)."""
    names = []
    for path in discover_drills(settings_of(ctx).project_dir / "drills"):
        try:
            spec = load_drill(path).spec
        except InvalidInput:
            continue
        if (query.topology and spec.topology is not query.topology) or \
                (query.drills and spec.name not in query.drills) or \
                (query.environments and spec.environment not in query.environments):
            continue
        names.append(spec.name)
    return names


@click.group("export", invoke_without_command=True)
@click.option("--from", "start", help="2026Q1, 2026-01-01 or an ISO time [the beginning]")
@click.option("--to", "end", help="inclusive quarter or day, or an ISO time [now]")
@click.option("--topology", help="only this topology")
@click.option("--drill", "drill_names", multiple=True, help="only this drill (repeatable)")
@click.option("--environment", "environments", multiple=True,
              help="only this environment (repeatable)")
@click.option("-o", "--output", "output_value", metavar="FORMAT|FILE",
              help="json [json], csv, html or pdf (to a file only), or a file whose extension "
                   "names the format (r.html, r.pdf); with --bundle: table or json, how the "
                   "bundle written is reported")
@click.option("--json", "json_alias", is_flag=True, help="the same as -o json")
@click.option("--format", "fmt", help="the same as -o FORMAT (must agree with -o FILE's "
                                      "extension)")
@click.option("--bundle", type=click.Path(), help="write a signed bundle: a directory, or "
                                                  "FILE.tar.gz")
@click.option("--keys", "keys_dir", help="signing key directory")
@click.option("--to-s3", "to_s3", help="also archive the bundle (FILE.tar.gz) to "
                                       "s3://bucket/prefix under Object Lock retention")
@click.option("--lock-mode", type=click.Choice(["GOVERNANCE", "COMPLIANCE"]),
              default="GOVERNANCE", show_default=True,
              help="COMPLIANCE: nobody can delete it before the date, not even root")
@click.option("--retain-days", type=click.IntRange(1, 36500),
              help="retention in days (required with --to-s3)")
@click.option("--force-without-lock", is_flag=True,
              help="archive to a bucket without Object Lock anyway (no retention)")
@click.pass_context
def export(ctx: click.Context, start: str | None, end: str | None, topology: str | None,
           drill_names: tuple[str, ...], environments: tuple[str, ...], fmt: str | None,
           output_value: str | None, json_alias: bool, bundle: str | None,
           keys_dir: str | None,
           to_s3: str | None, lock_mode: str, retain_days: int | None,
           force_without_lock: bool) -> None:
    """Export the sealed history of a period (json, csv, html, or the html printed to PDF
    with headless Chromium), or a signed bundle with every format, the evidence files, a
    manifest and its Ed25519 signature."""
    if ctx.invoked_subcommand is not None:
        return
    output = resolve(output_value, json_alias=json_alias, alias=fmt,
                     formats=BUNDLE_FORMATS if bundle else EXPORT_FORMATS,
                     default=Format.TABLE if bundle else Format.JSON)
    if output.format is Format.PDF and output.path is None:
        raise InvalidInput("a PDF is written to a file, not to the terminal", field="-o",
                           hint="-o report.pdf")
    if output.format is Format.PDF:
        from dalp_dr.adapters.chromium import find_browser

        find_browser()  # no browser: exit 2 before reading anything
    # lazy: the history store (SQLAlchemy, psycopg), cryptography and boto3 are heavy
    from dalp_dr.export import bundle as bundles
    from dalp_dr.export import keys as signing
    from dalp_dr.export.records import Query, parse_bound, verified_selection
    from dalp_dr.history import checkpointer, open_store

    try:
        kind = Topology(topology) if topology else None
    except ValueError:
        raise InvalidInput(f"unknown topology '{topology}'", field="--topology",
                           hint="one of " + ", ".join(t.value for t in Topology)) from None
    query = Query(start=parse_bound(start, end=False, field="--from") if start else None,
                  end=parse_bound(end, end=True, field="--to") if end else None,
                  topology=kind, drills=drill_names, environments=environments)
    key_directory = keys_dir_of(ctx, keys_dir)
    archive = None
    if to_s3:
        from dalp_dr.export.archive import BundleArchive, Target

        if not bundle or not bundle.endswith((".tar.gz", ".tgz")):
            raise InvalidInput("archiving needs a bundle file", field="--to-s3",
                               hint="add --bundle NAME.tar.gz")
        if retain_days is None:
            raise InvalidInput("how long must S3 keep the bundle?", field="--retain-days",
                               hint="e.g. --retain-days 2557 (seven years)")
        archive = BundleArchive(Target.parse(to_s3))
    if bundle:
        signing.load_private(key_directory)  # no key: exit 2 before reading anything
    with_lock = archive.preflight(force_without_lock) if archive is not None else False
    settings = settings_of(ctx).model_copy(update={"keys_dir": key_directory})
    # no history yet: exit 1 "no history yet at URL", creating nothing
    store = open_store(settings.store_url, results_dir=settings.results_dir, create=False)
    try:  # a history that 'history verify' rejects is not exported, let alone signed
        selection = verified_selection(store, checkpointer(settings), query,
                                       copies_evidence=bool(bundle))
    finally:
        store.close()
    if selection.attestation is not None and not selection.attestation.pinned:
        err.print(f"note: {selection.attestation.describe()} (the export says so)",
                  markup=False, soft_wrap=True)
    drills = _export_drills(ctx, query)
    if bundle:
        path, fingerprint = bundles.write_bundle(selection, Path(bundle), key_directory,
                                                 drills)
        written: dict[str, Any] = {
            "bundle": str(path), "records": len(selection.records),
            "period": query.describe(), "chain_head": selection.head, "signer": fingerprint,
            "archive": None}
        lines = [f"bundle {path}: {len(selection.records)} records ({query.describe()}), "
                 f"chain head {selection.head[:16]}..., signed by {fingerprint}"]
        if archive is not None:
            from dalp_dr.export.archive import LockMode

            stored = archive.upload(path, LockMode(lock_mode), retain_days or 0, with_lock)
            written["archive"] = {
                "url": stored.url, "version_id": stored.version_id, "sha256": stored.sha256,
                "mode": stored.mode, "retain_until": stored.retain_until.isoformat()
                if stored.retain_until else None}
            lines.append(f"archived {stored.url} (version {stored.version_id}, sha256 "
                         f"{stored.sha256}): " + (f"{stored.mode} retention until "
                                                  f"{stored.retain_until:%Y-%m-%d %H:%M} UTC"
                                                  if stored.mode and stored.retain_until else
                                                  "NO retention (bucket without Object "
                                                  "Lock)"))
        output.record(written, Text("\n".join(lines)))
        return
    if output.format is Format.PDF:
        from dalp_dr.adapters.chromium import print_to_pdf
        from dalp_dr.export.report import to_html

        assert output.path is not None
        size = print_to_pdf(to_html(selection, drills), output.path)
        err.print(f"wrote {output.path}: {len(selection.records)} records, {size} bytes",
                  markup=False)
        return
    text = bundles.write_single(selection, output.format.value, output.path, drills)
    if text is not None:
        click.echo(text, nl=False)
    else:
        err.print(f"wrote {output.path}: {len(selection.records)} records", markup=False)


@export.command("verify")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path())
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True),
              help="trust only this public key (the signer's, obtained out of band)")
@click.option("--fingerprint", help="trust only the key with this fingerprint (SHA256:..., as "
                                    "'keys init' prints it)")
@click.option("--keys", "keys_dir",
              help="without --public-key/--fingerprint, trust this key directory's "
                   "signing-key.pub.pem and the keys 'keys init --force' retired "
                   "(retired/*.pem) [DALP_DR_KEYS or ~/.config/dalp-dr]")
@output_options()
@click.pass_context
def export_verify(ctx: click.Context, bundle_path: str, public_key: str | None,
                  fingerprint: str | None, keys_dir: str | None, output: Output) -> None:
    """Check a bundle: signed by a trusted key, manifest digests, chain links, record and
    evidence digests. The key inside the bundle is never trusted by itself. Exit 1 naming
    the first problem, 2 when BUNDLE is not a bundle at all."""
    from dalp_dr.export.verify import Trust, verify_bundle  # lazy: cryptography is heavy

    if public_key and fingerprint:
        raise InvalidInput("give --public-key or --fingerprint, not both", field="--fingerprint")
    trust = (Trust.from_public_key(Path(public_key)) if public_key
             else Trust.from_fingerprint(fingerprint) if fingerprint
             else Trust.from_key_dir(keys_dir_of(ctx, keys_dir)))
    report = verify_bundle(Path(bundle_path), trust)
    verdict = "NOT verified" if report.untrusted_signer else "NOT intact"

    def human(console: Console) -> None:
        if not report.ok:
            return
        console.print(Text(f"bundle intact: {report.records} records, chain head "
                           f"{report.chain_head}, signed by the trusted key "
                           f"{report.trusted_fingerprint} ({report.key_source})"), soft_wrap=True)
        made = report.provenance
        if made is not None and made.exported_at is not None:
            console.print(Text(f"exported {format_time(made.exported_at)} by {made.exporter} "
                               f"on {made.controller} with dalp-dr {made.tool_version} (period "
                               f"{made.period})"), soft_wrap=True)
        elif made is not None:
            console.print(Text(f"generated {format_time(made.generated_at)} (period "
                               f"{made.period}); no provenance (written by an older "
                               "dalp-dr)"), soft_wrap=True)

    output.record({**report.model_dump(mode="json"),
                   "verdict": "intact" if report.ok else verdict.lower()}, human)
    if not report.ok:
        report_line("error", f"bundle {verdict}: {report.problem}")
        raise Exit(EXIT_FAILED)
