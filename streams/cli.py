"""The `streams` command: the embedded broker, topics, the worker, and tools for producers and consumers."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from streams.settings import Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


class _Group(click.Group):
    """Turns "no broker answers", a refused login or a bad TLS setting into one sentence that says what to do,
    instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from aiokafka.errors import KafkaConnectionError

        from streams.kafka.client import KafkaSecurityError, diagnose

        try:
            return super().invoke(ctx)
        except KafkaSecurityError as exc:
            raise click.ClickException(str(exc)) from exc
        except KafkaConnectionError as exc:
            settings = Settings.from_env()
            why = asyncio.run(diagnose(settings))
            if not why.nothing_listens:  # something answers: the login, TLS or protocol is what fails
                raise click.ClickException(f"cannot use the Kafka cluster: {why.message}") from exc
            raise click.ClickException(
                f"no Kafka broker answers at {settings.kafka_bootstrap} ({exc}): start the local one with "
                "`streams kafka start` (or `make run`), or point STREAMS_KAFKA_BOOTSTRAP at your cluster"
            ) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """article-streams: normalize, dedup, enrich and clear news articles on Kafka.

    Settings come from STREAMS_* environment variables (`streams config` lists them).
    """


# -- the embedded broker -------------------------------------------------------------------------------
@main.group()
def kafka() -> None:
    """The local single-node Apache Kafka broker the project fetches and runs itself."""


def _broker() -> Any:
    from streams.kafka.local import EmbeddedBroker

    return EmbeddedBroker(_settings())


@kafka.command("start")
def kafka_start() -> None:
    """Fetch (once) and start the broker on STREAMS_KAFKA_BOOTSTRAP; a no-op when one answers."""
    from streams.kafka.local import BrokerError

    try:
        _broker().start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the broker this project started (never one it did not start)."""
    _broker().stop()


@kafka.command("status")
def kafka_status() -> None:
    """Version, address, pid and whether the broker answers; exit 0 only when it answers."""
    answers, text = _broker().status()
    click.echo(text)
    sys.exit(0 if answers else 1)


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Only download the broker jars into the cache (for CI images and offline use)."""
    from streams.kafka.local import BrokerError

    try:
        click.echo(_broker().fetch())
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


# -- topics ----------------------------------------------------------------------------------------------
@main.group()
def topics() -> None:
    """The topics of the registry (streams/topics.py), with the configured prefix."""


@topics.command("create")
def topics_create() -> None:
    """Create every topic of the registry that is missing (idempotent)."""
    from streams.kafka.admin import create_topics

    for name, what in asyncio.run(create_topics(_settings())):
        click.echo(f"{what:8} {name}")


@topics.command("list")
def topics_list() -> None:
    """The registry's topics as the broker has them."""
    from streams.kafka.admin import describe, describe_row

    s = _settings()
    rows = [describe_row(t, s) for t in asyncio.run(describe(s))]
    if not rows:
        click.echo("no topics of the registry exist yet: run `streams topics create`")
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


# -- producers and consumers -------------------------------------------------------------------------------
@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--topic", default="articles.raw", show_default=True, help="Logical topic name (prefix applied).")
@click.option("--key-field", default="url", show_default=True, help="JSON field used as the record key.")
@click.option("--raw", is_flag=True, help="Send each line's bytes unchanged and keyless (to test bad input).")
def produce(file: Any, topic: str, key_field: str, raw: bool) -> None:
    """Send JSON lines from FILE (or - for stdin) to a topic: the reference producer."""
    from streams.tools import produce as do_produce

    report = asyncio.run(do_produce(_settings(), file, topic=topic, key_field=key_field or None, raw=raw))
    unsent = [
        f"skipped {report.skipped} non-JSON line(s)" if report.skipped else "",
        f"{report.too_large} line(s) over the topic's size limit not sent" if report.too_large else "",
        f"{report.failed} line(s) refused" if report.failed else "",
    ]
    click.echo(", ".join([f"sent {report.sent} event(s) to {topic}", *filter(None, unsent)]), err=True)
    if report.not_sent:
        sys.exit(1)  # each line not sent was named above, with why


@main.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset (default: only new records).")
@click.option("--max", "max_records", type=int, default=None, help="Stop after N records.")
@click.option("--timeout", type=float, default=None, help="Stop after S seconds without a new record.")
def tail(topic: str, from_beginning: bool, max_records: int | None, timeout: float | None) -> None:
    """Print committed records of TOPIC (logical name), one JSON document per line."""
    from streams.tools import tail as do_tail

    try:
        asyncio.run(
            do_tail(
                _settings(),
                topic,
                sys.stdout.buffer,
                from_beginning=from_beginning,
                max_records=max_records,
                timeout=timeout,
            )
        )
    except KeyError as exc:
        raise click.UsageError(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@main.command("replay-rejected")
@click.option("--reason", default=None, help="Only events refused for this reason code.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; send nothing.")
def replay_rejected(reason: str | None, dry_run: bool) -> None:
    """Re-send rejected events (original payload and key) to articles.raw once their cause is fixed."""
    from streams.tools import replay_rejected as do_replay

    r = asyncio.run(do_replay(_settings(), reason=reason, dry_run=dry_run))
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {r.replayed}; skipped {r.truncated} truncated payload(s) and {r.other_reason} of other reasons")


# -- the worker ----------------------------------------------------------------------------------------------
@main.command()
@click.option("--stages", default=None, help="Comma-separated stages to run (default STREAMS_STAGES=all).")
def worker(stages: str | None) -> None:
    """Run the pipeline's agents in the foreground (Ctrl-C stops); workers with the same settings share work."""
    import faust

    from streams.app import Pipeline
    from streams.kafka.admin import cluster_id
    from streams.logs import logging_config

    s = _settings()
    if s.event_loop == "uvloop":
        import uvloop

        uvloop.install()  # before any loop exists: the worker's and the consumer thread's loops are libuv's
    elif s.event_loop != "asyncio":
        raise click.UsageError(f"STREAMS_EVENT_LOOP={s.event_loop!r}: use uvloop or asyncio")
    cluster = asyncio.run(cluster_id(s))
    try:
        pipeline = Pipeline(s, stages=stages.split(",") if stages else None, cluster_id=cluster)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    pipeline.local_state_discarded = pipeline.local_state.on_start()

    class Worker(faust.Worker):
        def stop_and_shutdown(self) -> None:
            super().stop_and_shutdown()
            # Faust has committed, ended its transactions and closed the tables: the local state is sound.
            if not (self.crashed or pipeline.app.crashed):
                pipeline.local_state.on_clean_stop()

    Worker(
        pipeline.app,
        *pipeline.services,
        loglevel=s.log_level.upper(),
        logging_config=logging_config(s.log_level, s.log_format),
        redirect_stdouts=False,
        override_logging=True,
    ).execute_from_commandline()


# -- takedowns (the rights desk) ------------------------------------------------------------------------------
@main.group()
def takedown() -> None:
    """File, lift and look up takedowns: the same records the desk page and the HTTP API make."""


def _field_errors(errors: Any) -> click.ClickException:
    return click.ClickException("; ".join(f"{e.pointer or '/'}: {e.message}" for e in errors))


@takedown.command("add")
@click.option("--scope", required=True, type=click.Choice(["url", "domain", "source", "fingerprint", "cluster"]))
@click.option("--value", required=True, help="The URL, registered domain, source id/name, revision or cluster_id.")
@click.option("--reason", required=True, help="Why (goes into the audit and the statement of reasons).")
@click.option("--requested-by", "requested_by", required=True, help="Who asked (rights-holder or desk member).")
@click.option("--expires-at", default=None, help="RFC 3339 time after which the takedown stops blocking.")
@click.option("--expires-in", default=None, help="Or a duration from now: 90d, 12h, 1w2d.")
@click.option("--id", "takedown_id", default=None, help="Your own id (e.g. a ticket number); default: generated.")
@click.option("--ground", type=click.Choice(["legal", "terms"]), default=None, help="Statement of reasons: ground.")
@click.option("--legal-basis", default=None, help="The law relied on (with --ground legal).")
@click.option("--terms-clause", default=None, help="The terms-of-service clause (with --ground terms).")
@click.option("--territory", default=None, help="Territorial scope: country codes, comma-separated (worldwide).")
@click.option("--explanation", default=None, help="Facts and circumstances (default: the reason).")
@click.option("--no-republish", is_flag=True, help="On lift or expiry, do not re-publish what it withheld.")
def takedown_add(**opts: Any) -> None:
    """File a takedown: prints its id once the broker has it."""
    from datetime import UTC, datetime

    from streams import takedowns
    from streams.stages.takedown.requests import new_request

    record = new_request(
        opts["scope"],
        opts["value"],
        opts["reason"],
        opts["requested_by"],
        now=datetime.now(UTC),
        expires_at=opts["expires_at"],
        expires_in=opts["expires_in"],
        takedown_id=opts["takedown_id"],
        republish_on_lift=not opts["no_republish"],
        ground=opts["ground"],
        legal_basis=opts["legal_basis"],
        terms_clause=opts["terms_clause"],
        territorial_scope=opts["territory"],
        explanation=opts["explanation"],
    )
    if isinstance(record, list):
        raise _field_errors(record)
    asyncio.run(takedowns.submit(_settings(), record))
    click.echo(record["takedown_id"])


@takedown.command("lift")
@click.argument("takedown_id")
@click.option("--reason", required=True, help="Why the takedown is lifted.")
@click.option("--by", "by", required=True, help="Who lifts it.")
def takedown_lift(takedown_id: str, reason: str, by: str) -> None:
    """Lift a takedown: it stops blocking, and what it withheld is re-published unless something else covers it."""
    from datetime import UTC, datetime

    from streams import takedowns
    from streams.stages.takedown.requests import lift_request

    s = _settings()
    view = asyncio.run(takedowns.load(s))
    current = view.records.get(takedown_id)
    if current is None:
        raise click.ClickException(f"no takedown {takedown_id} on {s.topic('takedowns')}")
    record = lift_request(current, reason, by, now=datetime.now(UTC))
    if isinstance(record, list):
        raise _field_errors(record)
    asyncio.run(takedowns.submit(s, record))
    click.echo(f"lifted {takedown_id}")


@takedown.command("list")
@click.option("--active", is_flag=True, help="Only takedowns in force.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document per takedown.")
def takedown_list(active: bool, as_json: bool) -> None:
    """Every takedown, newest first, with its status and what it did."""
    from dataclasses import asdict

    import orjson

    from streams import takedowns

    view = asyncio.run(takedowns.load(_settings()))
    rows = view.select(status="active" if active else None)
    if as_json:
        for row in rows:
            click.echo(orjson.dumps({k: v for k, v in asdict(row).items() if k != "record"}).decode())
        return
    if not rows:
        click.echo("no takedowns" + (" in force" if active else ""))
        return
    header = ("id", "status", "scope", "value", "requested by", "requested at", "blocked", "retracted", "reinstated")
    table: list[tuple[str, ...]] = [
        header,
        *[
            (
                r.takedown_id,
                r.status,
                r.scope or "",
                r.value or "",
                r.requested_by or "",
                r.requested_at or "",
                str(r.blocked),
                str(r.retracted),
                str(r.reinstated),
            )
            for r in rows
        ],
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


@takedown.command("show")
@click.argument("takedown_id")
@click.option("--json", "as_json", is_flag=True, help="The request and its timeline as one JSON document.")
def takedown_show(takedown_id: str, as_json: bool) -> None:
    """Who asked, when, and what was blocked, retracted and reinstated: the takedown's story from the audit."""
    from dataclasses import asdict

    import orjson

    from streams import takedowns

    view = asyncio.run(takedowns.load(_settings()))
    summary = view.summary(takedown_id)
    timeline = view.timeline(takedown_id)
    if summary.record is None and not timeline:
        raise click.ClickException(f"no takedown {takedown_id}")
    if as_json:
        click.echo(orjson.dumps({**asdict(summary), "timeline": timeline}).decode())
        return
    click.echo(f"takedown {takedown_id}: {summary.status}")
    click.echo(f"  scope {summary.scope} = {summary.value}")
    click.echo(f"  requested by {summary.requested_by} at {summary.requested_at}: {summary.reason}")
    if summary.expires_at:
        click.echo(f"  expires at {summary.expires_at}")
    click.echo(f"  blocked {summary.blocked}, retracted {summary.retracted}, reinstated {summary.reinstated}")
    for e in timeline:
        what = e.get("title") or e.get("canonical_url") or e.get("message") or e.get("reason") or ""
        who = e.get("by") or ""
        click.echo(f"  {e.get('at')}  {e.get('action'):<15} {what}" + (f"  (by {who})" if who else ""))


# -- the audit --------------------------------------------------------------------------------------------------
class _Bar:
    """The audit's progress bar (tqdm, on stderr), only when stdout is a terminal and the output is text."""

    def __init__(self) -> None:
        self.bar: Any = None

    def start(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="rec", unit_scale=True, dynamic_ncols=True, leave=False, file=sys.stderr)

    def advance(self, topic: str, n: int) -> None:
        if self.bar is not None:
            self.bar.set_description(topic, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the text report.")
@click.option(
    "--since", default=None, help="Only raw events after T: RFC 3339 (2025-08-12T07:00:00Z), a date, or 2h / 7d ago."
)
@click.option("--limit", type=int, default=20, show_default=True, help="Offenders listed of each kind (0: all).")
def audit(as_json: bool, since: str | None, limit: int) -> None:
    """Prove from the topics that every raw event ended exactly once: published, duplicate, rejected or taken down.

    Exit 0 when it balances (events still in flight are reported, not counted against it), 1 on any imbalance:
    a raw event unaccounted for or accounted more than once, or an article published twice without an update.
    """
    from datetime import UTC, datetime

    import orjson

    from streams.audit import AuditError, parse_since
    from streams.kafka.audit import run

    since_ms = None
    if since is not None:
        try:
            since_ms = parse_since(since, datetime.now(UTC))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    bar = _Bar() if sys.stdout.isatty() and not as_json else None
    try:
        report = asyncio.run(run(_settings(), since_ms=since_ms, limit=limit, progress=bar))
    except AuditError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        click.echo(orjson.dumps(report.as_dict()).decode())
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(0 if report.balanced else 1)


@main.command()
@click.option("--host", default=None, help="Bind address (default STREAMS_DESK_HOST).")
@click.option("--port", type=int, default=None, help="Port (default STREAMS_DESK_PORT).")
def desk(host: str | None, port: int | None) -> None:
    """Serve the rights desk's web page: file, lift and look up takedowns, export the audit (Ctrl-C stops)."""
    import logging.config
    from dataclasses import replace

    from streams.desk import run
    from streams.logs import logging_config

    s = _settings()
    s = replace(s, desk_host=host or s.desk_host, desk_port=port or s.desk_port)
    logging.config.dictConfig(logging_config(s.log_level, s.log_format))
    run(s)


@main.command()
def config() -> None:
    """Every setting with its current value (from STREAMS_* variables or the default)."""
    for var, value in _settings().as_env_doc():
        click.echo(f"{var}={value}")


if __name__ == "__main__":
    main()
