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
    """Turns "no broker answers" into one sentence that says what to do, instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from aiokafka.errors import KafkaConnectionError

        try:
            return super().invoke(ctx)
        except KafkaConnectionError as exc:
            bootstrap = Settings.from_env().kafka_bootstrap
            raise click.ClickException(
                f"no Kafka broker answers at {bootstrap} ({exc}): start the local one with `streams kafka start`"
                " (or `make run`), or point STREAMS_KAFKA_BOOTSTRAP at your cluster"
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
    from streams.logs import logging_config

    s = _settings()
    try:
        pipeline = Pipeline(s, stages=stages.split(",") if stages else None)
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


@main.command()
def config() -> None:
    """Every setting with its current value (from STREAMS_* variables or the default)."""
    for var, value in _settings().as_env_doc():
        click.echo(f"{var}={value}")


if __name__ == "__main__":
    main()
