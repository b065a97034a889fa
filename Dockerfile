# The article-streams image: every `streams` command, `streams worker` by default.
#   docker build -t article-streams .
#   docker run --rm -e STREAMS_KAFKA_BOOTSTRAP=broker:9092 -p 6066:6066 article-streams
# docker-compose.yml runs it as the `topics` job (`streams topics create`), the `worker` service and the `desk`
# service (`streams desk`, the rights desk's web page on 6070).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer: a change to the code does not reinstall them.
# Every pinned dependency ships a manylinux wheel, so no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt
COPY README.md ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip install --no-deps .
# The wheel installs the JSON Schemas under <prefix>/share/article-streams/schemas, where streams.schemas
# looks outside a checkout; copy them there if not, and fail the build (not the first event) if missing.
# Run from / so that `import streams` finds the installed package, not the sources in /src.
RUN cd / \
    && schema_dir="$(python -c 'import streams.schemas as s; print(s.SCHEMA_DIR)')" \
    && { [ -d "$schema_dir" ] || cp -r /src/schemas "$schema_dir"; } \
    && python -c 'import streams.schemas as s; assert s.schema_files(), f"no schemas in {s.SCHEMA_DIR}"' \
    && streams --help > /dev/null

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMS_WEB_HOST=0.0.0.0 \
    STREAMS_WEB_PORT=6066 \
    STREAMS_DATA_DIR=/var/lib/article-streams
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/streams streams \
    && mkdir -p /var/lib/article-streams \
    && chown streams:streams /var/lib/article-streams
COPY --from=build /opt/venv /opt/venv
USER streams
WORKDIR /home/streams
# /metrics, /health and /ready
EXPOSE 6066
# the rights desk, when the container runs `streams desk`
EXPOSE 6070
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STREAMS_WEB_PORT', '6066') + '/health', timeout=4)"]
CMD ["streams", "worker"]
