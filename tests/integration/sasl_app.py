"""A minimal exactly-once Faust worker that connects as the settings say (SASL, TLS): copies <prefix>sec.in to
<prefix>sec.out. Built and logged like `streams worker` (Settings.from_env, streams.logs), for test_security.py.

SEC_APP_LOG_ALL=1 puts every logger, Faust's and aiokafka's included, at the settings' level (debug in the
test), so a secret that any library logs would show."""

from __future__ import annotations

import logging
import os

import faust

from streams import eos
from streams.kafka.client import describe, faust_broker_kwargs
from streams.logs import event, logging_config
from streams.settings import Settings

eos.install()
settings = Settings.from_env()
broker = faust_broker_kwargs(settings)
app = faust.App(
    settings.topic_prefix + "sec-test",
    **broker,
    processing_guarantee="exactly_once",
    store="memory://",
    datadir=settings.data_dir,
    web_enabled=False,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
    topic_partitions=2,
    topic_replication_factor=1,
    autodiscover=False,
)
source = app.topic(settings.topic("sec.in"), key_serializer="raw", value_serializer="raw", partitions=2)
sink = app.topic(settings.topic("sec.out"), key_serializer="raw", value_serializer="raw", partitions=2)
log = logging.getLogger("streams.sec_app")


@app.agent(source)
async def copy(stream):
    async for event_ in stream.events():
        async with eos.processing(app, event_) as skip:
            if skip:
                continue
            await sink.send(key=event_.message.key, value=event_.message.value)


@app.task
async def announce() -> None:
    # What a careless worker would log at start: the settings object and the credentials, both by repr.
    event(
        log,
        "sec_app_started",
        connects=describe(settings),
        settings=repr(settings),
        credentials=repr(broker.get("broker_credentials")),
        token_set=bool(settings.takedown_token),
    )


if __name__ == "__main__":
    config = logging_config(settings.log_level, settings.log_format)
    if os.environ.get("SEC_APP_LOG_ALL") == "1":
        for name in config["loggers"]:
            config["loggers"][name]["level"] = settings.log_level.upper()
    faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        logging_config=config,
        redirect_stdouts=False,
        override_logging=True,
    ).execute_from_commandline()
