"""Builds the Faust app: settings, topics from the registry, the selected stages' agents, web endpoints, timers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP

from streams import __version__, eos, topics
from streams.kafka.local import KAFKA_VERSION, parse_bootstrap
from streams.local_state import LocalState
from streams.logs import event
from streams.metrics import Metrics
from streams.observability import Observability
from streams.settings import Settings

log = logging.getLogger("streams.app")

# Stage name -> "module:function" that registers its agents on a Pipeline. Order is the flow order.
STAGE_MODULES: dict[str, str] = {
    "normalize": "streams.agents.normalize:register",
    "dedup": "streams.agents.dedup:register",
}


class Pipeline:
    """One worker's Faust app with the chosen stages; several with the same settings form one consumer group."""

    def __init__(self, settings: Settings, stages: list[str] | None = None, metrics: Metrics | None = None) -> None:
        eos.install()
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.metrics.build_info.info({"version": __version__, "kafka_version": KAFKA_VERSION})
        self.stages = select_stages(stages if stages is not None else settings.stages)
        self.tables: dict[str, Any] = {}  # Faust tables by name, for recovery metrics and readiness
        self.readiness: dict[str, Callable[[], bool]] = {}  # more conditions of /ready, added by stages
        self.app = faust.App(
            settings.group_id,
            broker=[f"kafka://{a}" for a in parse_bootstrap(settings.kafka_bootstrap)],
            processing_guarantee=settings.processing_guarantee,
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=settings.data_dir,
            web_enabled=False,  # streams.observability serves /metrics, /health, /ready before recovery ends
            web_host=settings.web_host,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            # The address other workers use to reach this one (table routing); never 0.0.0.0.
            canonical_url=f"http://{_advertised_host(settings.web_host)}:{settings.web_port}",
            web_transport="tcp://",
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            table_standby_replicas=settings.table_standby_replicas,
            producer_max_request_size=11 * 1024 * 1024,
            consumer_max_fetch_size=11 * 1024 * 1024,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=0.5,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 4),
            autodiscover=False,
            version=1,
        )
        self.local_state = LocalState(self.app.conf.tabledir, settings.processing_guarantee == "exactly_once")
        self.local_state_discarded = False  # set by the worker command before Faust opens the tables
        self._register_events()
        self.observability = Observability(self)  # started by the Faust worker beside the app
        self.services: list[Any] = [self.observability]  # every service the worker runs beside the app
        for name in self.stages:
            _load(STAGE_MODULES[name])(self)

    def topic(self, logical: str) -> faust.TopicT:
        """A registry topic as a Faust channel of raw bytes (we encode and decode with orjson ourselves)."""
        t = topics.get(logical)
        return self.app.topic(
            t.physical(self.settings),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=t.partition_count(self.settings),
        )

    def recovery(self) -> Any:
        """Faust's table recovery service (None before the app has tables)."""
        return self.app.tables.recovery if self.app.tables else None  # type: ignore[attr-defined]

    def source_topics(self) -> set[str]:
        """The topics the agents read (not table changelogs nor Faust's internal assignor topic)."""
        return {t for agent in self.app.agents.values() for t in agent.channel.topics}

    # -- readiness ----------------------------------------------------------------------------------
    def consumer_started(self) -> bool:
        consumer = getattr(self.app, "_consumer", None)
        return consumer is not None and getattr(consumer._thread, "_consumer", None) is not None  # noqa: SLF001

    def is_ready(self) -> tuple[bool, dict[str, Any]]:
        assigned = len(self.app.consumer.assignment()) if self.consumer_started() else 0
        recovery = self.recovery()
        recovering = bool(recovery and (recovery.in_recovery or recovery.active_remaining_total() > 0))
        rebalancing = bool(getattr(self.app, "rebalancing", False))
        waiting_for = sorted(name for name, check in self.readiness.items() if not check())
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
    import socket

    return socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind


def select_stages(spec: str | list[str]) -> list[str]:
    names = (
        list(STAGE_MODULES)
        if spec in ("all", ["all"])
        else ([s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec))
    )
    unknown = [n for n in names if n not in STAGE_MODULES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGE_MODULES)}")
    return [n for n in STAGE_MODULES if n in names]


def _load(ref: str) -> Callable[[Pipeline], None]:
    import importlib

    module, _, func = ref.partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]
