"""A minimal exactly-once Faust app for the EOS test: copies <prefix>eos.in to <prefix>eos.out, slowly."""

from __future__ import annotations

import asyncio
import os

import faust

from streams import eos

prefix = os.environ["STREAMS_TOPIC_PREFIX"]
app = faust.App(
    prefix + "eos-test",
    broker="kafka://" + os.environ["STREAMS_KAFKA_BOOTSTRAP"],
    processing_guarantee="exactly_once",
    store="memory://",
    datadir=os.environ["STREAMS_DATA_DIR"],
    web_enabled=False,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
    autodiscover=False,
)
eos.install(app)
source = app.topic(prefix + "eos.in", key_serializer="raw", value_serializer="raw", partitions=4)
sink = app.topic(prefix + "eos.out", key_serializer="raw", value_serializer="raw", partitions=4)
delay = float(os.environ.get("EOS_DELAY", "0"))


@app.agent(source)
async def copy(stream):
    async for event in stream.events():
        async with eos.processing(app, event) as skip:
            if skip:
                continue
            if delay:
                await asyncio.sleep(delay)
            await sink.send(key=event.message.key, value=event.message.value)


if __name__ == "__main__":
    app.main()
