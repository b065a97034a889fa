"""The peer a user would pick instead: a Quix Streams (librdkafka) exactly-once passthrough of the same hops.

    python -m streams.bench.quixchain      (settings from STREAMS_*; SIGTERM stops it; needs the `bench` extra)

One Application, one consumer group, exactly-once (`processing_guarantee="exactly-once"`), four
StreamingDataFrames that forward every record unchanged, as `streams.bench.chain`'s identity hops do:
raw[4] -> normalized[4] + dedup-sequenced[1] -> unique[4] -> enriched[4] -> published[4]. Tuned as the raw
chain: a checkpoint (transaction) every 100 ms or 1,000 records, linger 5 ms, fetch wait 25 ms. Prints
BENCH-READY once its partitions are assigned. PLAINTEXT and SASL/SSL settings are passed to librdkafka.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from streams import topics
from streams.bench.chain import FETCH_WAIT_MS, LINGER_MS, READY
from streams.kafka.client import bootstrap_servers, protocol, uses_sasl
from streams.settings import Settings

COMMIT_INTERVAL_S = 0.1
COMMIT_EVERY = 1000


def librdkafka_security(s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"security.protocol": protocol(s).lower()}
    if uses_sasl(s):
        out.update(
            {
                "sasl.mechanism": s.kafka_sasl_mechanism.strip().upper(),
                "sasl.username": s.kafka_sasl_username,
                "sasl.password": s.kafka_sasl_password,
            }
        )
    if s.kafka_ssl_cafile:
        out["ssl.ca.location"] = s.kafka_ssl_cafile
    if s.kafka_ssl_certfile:
        out["ssl.certificate.location"] = s.kafka_ssl_certfile
    if s.kafka_ssl_keyfile:
        out["ssl.key.location"] = s.kafka_ssl_keyfile
    return out


def build(s: Settings) -> Any:
    # Through importlib, typed Any: mypy runs with and without the extra installed.
    Application: Any = importlib.import_module("quixstreams").Application

    class _App(Application):
        def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
            super()._on_assign(consumer, partitions)
            if partitions:
                print(READY, flush=True)

    security = librdkafka_security(s)
    app = _App(
        broker_address=",".join(bootstrap_servers(s)),
        consumer_group=f"{s.topic_prefix}quix",
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_S,
        commit_every=COMMIT_EVERY,
        auto_create_topics=False,
        use_changelog_topics=False,
        consumer_extra_config={
            **security,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            "max.partition.fetch.bytes": topics.MAX_REQUEST_BYTES,
            "fetch.message.max.bytes": topics.MAX_REQUEST_BYTES,
        },
        producer_extra_config={
            **security,
            "linger.ms": LINGER_MS,
            "batch.size": 1024 * 1024,
            "message.max.bytes": topics.MAX_REQUEST_BYTES,
        },
        loglevel="WARNING",
        state_dir=f"{s.data_dir}/quix-state",
    )

    def topic(name: str) -> Any:
        return app.topic(
            s.topic(name),
            key_deserializer="bytes",
            value_deserializer="bytes",
            key_serializer="bytes",
            value_serializer="bytes",
        )

    raw, normalized, sequenced = topic("articles.raw"), topic("articles.normalized"), topic("articles.dedup-sequenced")
    unique, enriched, published = topic("articles.unique"), topic("articles.enriched"), topic("articles.published")
    first = app.dataframe(raw)
    first.to_topic(normalized)
    first.to_topic(sequenced)
    app.dataframe(sequenced).to_topic(unique)
    app.dataframe(unique).to_topic(enriched)
    app.dataframe(enriched).to_topic(published)
    return app


def main() -> int:
    try:
        import quixstreams  # noqa: F401
    except ImportError:
        print("Quix Streams is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    build(Settings.from_env()).run()  # Quix stops cleanly on SIGTERM/SIGINT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
