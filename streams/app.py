"""Builds a worker: the Faust app, the registry's topics, the selected stages, the web server and the ticks.

A stage registers itself through the Pipeline's explicit API (`add_table`, `add_readiness`, `add_service`,
`add_route`, `ticks.add`) and its agents through `streams.agents.runner`; nothing else is mutated from outside.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.types import TP
from mode import Service

from streams import __version__, eos, local_state, schemas, topics
from streams.kafka.client import faust_broker_kwargs
from streams.kafka.local import KAFKA_VERSION
from streams.local_state import LocalState
from streams.logs import event
from streams.metrics import Metrics
from streams.observability import ConsumerFacts, Observability
from streams.settings import Settings
from streams.ticks import Ticks
from streams.web import Handler, WebServer

log = logging.getLogger("streams.app")


class Pipeline:
    """One worker's Faust app with the chosen stages; several with the same settings form one consumer group."""

    def __init__(
        self,
        settings: Settings,
        stages: list[str] | None = None,
        metrics: Metrics | None = None,
        *,
        cluster_id: str = "unknown",
    ) -> None:
        from streams.agents import STAGES

        schemas.check_all()  # every contract file is valid JSON Schema, or the worker does not start
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.metrics.build_info.info({"version": __version__, "kafka_version": KAFKA_VERSION})
        self.stages = select_stages(stages if stages is not None else settings.stages, list(STAGES))
        state = settings.state_dir(cluster_id)
        state.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
        self.app = faust.App(
            settings.group_id,
            **faust_broker_kwargs(settings),
            processing_guarantee=settings.processing_guarantee,
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=str(state),
            web_enabled=False,  # streams.web serves /metrics, /health, /ready before recovery ends
            web_host=settings.web_host,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            # The address other workers use to reach this one (table routing); never 0.0.0.0.
            canonical_url=f"http://{_advertised_host(settings.web_host)}:{settings.web_port}",
            web_transport="tcp://",
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            table_standby_replicas=settings.table_standby_replicas,
            producer_max_request_size=topics.MAX_REQUEST_BYTES,
            producer_linger=settings.producer_linger_ms / 1000,
            producer_max_batch_size=settings.producer_batch_bytes,
            producer_compression_type=None
            if settings.producer_compression == "none"
            else settings.producer_compression,
            consumer_max_fetch_size=topics.MAX_REQUEST_BYTES,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=settings.commit_interval_seconds,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 4),
            autodiscover=False,
            version=1,
        )
        eos.install(self.app)  # refuses to run on a Faust it was not written for
        local_state.install()  # a local store ahead of its changelog is restored, not a crash
        self.facts = ConsumerFacts(self.app)
        self.tables: dict[str, Any] = {}  # Faust tables by name, for recovery metrics and readiness
        self._readiness: dict[str, Callable[[], bool]] = {}
        self._recovery_progress: list[Callable[[], Mapping[str, int]]] = []
        self._services: list[Service] = []
        self._topics: dict[tuple[str, ...], Any] = {}
        self.web = WebServer(settings.web_host, settings.web_port, max_body_bytes=settings.web_max_body_bytes)
        self.ticks = Ticks(self)
        self.cluster_id = cluster_id
        self.local_state = LocalState(self.app.conf.tabledir, settings.processing_guarantee == "exactly_once")
        self.local_state_discarded = False  # set by the worker command before Faust opens the tables
        self.observability = Observability(self)
        self._register_events()
        for name in self.stages:
            STAGES[name](self)

    # -- what stages register ---------------------------------------------------------------------------------
    def table(self, name: str, **options: Any) -> Any:
        """The Faust table `name` of the changelog registry (streams.topics.CHANGELOGS), registered.
        `options` go to Faust's Table (e.g. on_changelog_event)."""
        spec = topics.CHANGELOG_BY_TABLE[name]
        table = self.app.Table(
            name,
            partitions=spec.partition_count(self.settings),
            help=spec.description,
            extra_topic_configs=spec.topic_config(),
            **options,
        )
        return self.add_table(name, table)

    def add_table(self, name: str, table: Any) -> Any:
        """A Faust table of a stage: its recovery is exported and /ready waits for it."""
        if name in self.tables:
            raise ValueError(f"table {name} is already registered")
        self.tables[name] = table
        return table

    def add_readiness(self, name: str, check: Callable[[], bool]) -> None:
        """One more condition of /ready (e.g. an in-memory index built); its name is reported while false."""
        self._readiness[name] = check

    def add_recovery_progress(self, remaining: Callable[[], Mapping[str, int]]) -> None:
        """State a stage restores besides Faust's changelog replay (e.g. a snapshot it loads before the app
        starts): `remaining()` gives records still to load per table, added to the recovery gauges and
        /ready's `recovering`."""
        self._recovery_progress.append(remaining)

    def recovery_remaining(self) -> dict[str, int]:
        """Records per table still to restore outside Faust's own recovery (see add_recovery_progress)."""
        out: dict[str, int] = {}
        for remaining in self._recovery_progress:
            for table, n in remaining().items():
                out[table] = out.get(table, 0) + n
        return out

    def add_service(self, service: Service) -> None:
        """A service the worker starts beside the app and stops with it."""
        self._services.append(service)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """An HTTP route on the worker's one web server (STREAMS_WEB_HOST:STREAMS_WEB_PORT)."""
        self.web.add_route(method, path, handler)

    @property
    def services(self) -> list[Service]:
        """Every service the worker runs beside the app."""
        return [self.web, self.observability, self.ticks, *self._services]

    # -- topics ---------------------------------------------------------------------------------------------------
    def topic(self, logical: str) -> Any:
        """A registry topic as a Faust channel of raw bytes (we encode and decode with orjson ourselves)."""
        return self.channel(logical)

    def channel(self, *logical: str) -> Any:
        """One Faust channel over one or more registry topics (a stage reading several topics in one stream)."""
        cached = self._topics.get(logical)
        if cached is None:
            ts = [topics.get(name) for name in logical]
            counts = {t.partition_count(self.settings) for t in ts}
            if len(counts) != 1:
                raise ValueError(f"topics read in one stream must be co-partitioned: {logical}")
            cached = self._topics[logical] = self.app.topic(
                *[t.physical(self.settings) for t in ts],
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=counts.pop(),
            )
        return cached

    def source_topics(self) -> set[str]:
        """The topics the agents read (not table changelogs nor Faust's internal assignor topic)."""
        return {t for agent in self.app.agents.values() for t in agent.channel.topics}

    # -- readiness ------------------------------------------------------------------------------------------------
    def is_ready(self) -> tuple[bool, dict[str, Any]]:
        assigned = len(self.facts.assignment())
        recovery = self.facts.recovery()
        recovering = bool(recovery and (recovery.in_recovery or recovery.active_remaining_total() > 0))
        recovering = recovering or any(n > 0 for n in self.recovery_remaining().values())
        rebalancing = self.facts.rebalancing()
        waiting_for = sorted(name for name, check in self._readiness.items() if not check())
        ready = assigned > 0 and not recovering and not rebalancing and not waiting_for
        facts = {"assigned_partitions": assigned, "recovering": recovering, "rebalancing": rebalancing}
        return ready, {**facts, "waiting_for": waiting_for}

    def _register_events(self) -> None:
        app = self.app

        @app.task
        async def announce() -> None:
            self.local_state.announce(self.local_state_discarded)
            event(
                log,
                "worker_started",
                stages=self.stages,
                group=self.settings.group_id,
                bootstrap=self.settings.kafka_bootstrap,
                guarantee=self.settings.processing_guarantee,
                web=f"http://{self.settings.web_host}:{self.settings.web_port}",
            )

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
            event(log, "partitions_assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


def _advertised_host(bind: str) -> str:
    return socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind


def select_stages(spec: str | list[str], known: list[str]) -> list[str]:
    """The stages named by `spec` ("all", "normalize,dedup" or a list), in flow order."""
    names = (
        list(known)
        if spec in ("all", ["all"])
        else ([s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec))
    )
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [n for n in known if n in names]
