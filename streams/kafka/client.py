"""How every Kafka client of the project connects: bootstrap servers, SASL and TLS, from the settings, in one place.

aiokafka clients (tools, admin, tests, benchmarks) take `**aiokafka_kwargs(settings)`; the Faust app takes
`**faust_broker_kwargs(settings)`. Both read the `# kafka security` block of `streams.settings.Settings`, e.g.

    STREAMS_KAFKA_SECURITY_PROTOCOL=SASL_SSL STREAMS_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
    STREAMS_KAFKA_SASL_USERNAME=pipeline STREAMS_KAFKA_SASL_PASSWORD=... STREAMS_KAFKA_SSL_CAFILE=/etc/kafka/ca.pem

Nothing here logs or puts a secret into an error message.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka.helpers import create_ssl_context

from streams.kafka.local import parse_bootstrap
from streams.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """The security settings cannot work as given; the message names the variable to fix."""


def protocol(settings: Settings) -> str:
    return settings.kafka_security_protocol.strip().upper()


def uses_sasl(settings: Settings) -> bool:
    return protocol(settings).startswith("SASL_")


def uses_tls(settings: Settings) -> bool:
    return protocol(settings) in ("SSL", "SASL_SSL")


def check(settings: Settings) -> None:
    """Raise KafkaSecurityError naming every setting that is wrong, before any client tries to connect."""
    problems = []
    proto = protocol(settings)
    if proto not in PROTOCOLS:
        problems.append(
            f"STREAMS_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol!r} is not one of {PROTOCOLS}"
        )
    if proto.startswith("SASL_"):
        mechanism = settings.kafka_sasl_mechanism.strip().upper()
        if mechanism not in MECHANISMS:
            problems.append(
                f"STREAMS_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r} is not one of {MECHANISMS}"
            )
        if not settings.kafka_sasl_username:
            problems.append(f"STREAMS_KAFKA_SASL_USERNAME is empty but {proto} needs it")
        if not settings.kafka_sasl_password:
            problems.append(f"STREAMS_KAFKA_SASL_PASSWORD is empty but {proto} needs it")
    if proto in ("SSL", "SASL_SSL"):
        for var, path in (
            ("STREAMS_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
            ("STREAMS_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
            ("STREAMS_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile),
        ):
            if path and not Path(path).is_file():
                problems.append(f"{var}={path} is not a readable file")
        if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
            problems.append("STREAMS_KAFKA_SSL_KEYFILE is set without STREAMS_KAFKA_SSL_CERTFILE")
    if problems:
        raise KafkaSecurityError("Kafka security settings: " + "; ".join(problems))


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (None otherwise): the broker's certificate is always verified
    against STREAMS_KAFKA_SSL_CAFILE (or the system CAs); its host name too unless check-hostname is off."""
    check(settings)
    if not uses_tls(settings):
        return None
    try:
        context = create_ssl_context(
            cafile=settings.kafka_ssl_cafile or None,
            certfile=settings.kafka_ssl_certfile or None,
            keyfile=settings.kafka_ssl_keyfile or None,
            password=settings.kafka_ssl_key_password or None,
        )
    except (ssl.SSLError, OSError) as exc:
        # ssl's messages name the failing step (e.g. "[SSL] PEM lib"), never the key password
        raise KafkaSecurityError(
            "Kafka TLS files could not be loaded (STREAMS_KAFKA_SSL_CAFILE/_CERTFILE/_KEYFILE/_KEY_PASSWORD): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    # Off only for test clusters whose certificates do not name the address used; the chain is still verified.
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def bootstrap_servers(settings: Settings) -> list[str]:
    return [str(a) for a in parse_bootstrap(settings.kafka_bootstrap)]


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    check(settings)
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": protocol(settings),
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if uses_sasl(settings):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism.strip().upper()
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password
    return kwargs


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """`broker` (kafka:// URLs: Faust's aiokafka transport; TLS and SASL come from the credentials, not the URL
    scheme) and, unless PLAINTEXT, `broker_credentials`, for `faust.App(...)`."""
    import faust

    check(settings)
    kwargs: dict[str, Any] = {"broker": [f"kafka://{a}" for a in bootstrap_servers(settings)]}
    context = ssl_context(settings)
    if uses_sasl(settings):
        # With an ssl_context Faust switches the protocol to SASL_SSL; without one it is SASL_PLAINTEXT.
        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism.strip().upper(),
            ssl_context=context,
        )
    elif context is not None:
        kwargs["broker_credentials"] = faust.SSLCredentials(context)
    return kwargs


def describe(settings: Settings) -> str:
    """How clients connect, for messages and logs: protocol, mechanism and user, never the password."""
    proto = protocol(settings)
    if uses_sasl(settings):
        return f"{proto} {settings.kafka_sasl_mechanism.strip().upper()} as {settings.kafka_sasl_username!r}"
    return proto


class Diagnosis(NamedTuple):
    message: str  # one sentence per bootstrap address, naming the setting to look at
    nothing_listens: bool  # no address accepted a TCP connection: no broker runs there


async def diagnose(settings: Settings, timeout: float = 10.0) -> Diagnosis:
    """Why clients cannot reach the cluster, in one sentence naming the setting to look at.

    aiokafka reports every failed bootstrap as "Unable to bootstrap from [...]" and only logs the cause; this
    connects to each bootstrap address once more and reads the cause (refused, TLS, SASL login) from the error.
    """
    import asyncio

    from aiokafka import errors
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    kwargs = aiokafka_kwargs(settings)
    servers = kwargs.pop("bootstrap_servers")
    how = describe(settings)
    reasons = []
    refused = 0
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **kwargs), timeout
            )
            try:
                await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
            finally:
                conn.close()
            return Diagnosis(f"{server} answers ({how}) now: the failure may have been passing", False)
        except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError) as exc:
            reasons.append(
                f"{server}: the broker refused the login ({how}): {_broker_message(exc)}; check "
                "STREAMS_KAFKA_SASL_USERNAME, STREAMS_KAFKA_SASL_PASSWORD and STREAMS_KAFKA_SASL_MECHANISM"
            )
        except errors.UnsupportedSaslMechanismError as exc:
            reasons.append(f"{server}: {_broker_message(exc)}; set STREAMS_KAFKA_SASL_MECHANISM to one of them")
        except ssl.SSLCertVerificationError as exc:
            reasons.append(
                f"{server}: the broker's TLS certificate was not accepted ({exc.verify_message}); check "
                "STREAMS_KAFKA_SSL_CAFILE (the CA that signed it) and STREAMS_KAFKA_SSL_CHECK_HOSTNAME"
            )
        except ssl.SSLError as exc:
            reasons.append(
                f"{server}: the TLS handshake failed ({exc.reason or exc}): is it a TLS listener "
                f"(STREAMS_KAFKA_SECURITY_PROTOCOL={protocol(settings)})?"
            )
        except ConnectionRefusedError:
            refused += 1
            reasons.append(f"{server}: nothing listens there")
        except socket.gaierror:
            refused += 1
            reasons.append(f"{server}: the host name does not resolve")
        except TimeoutError:
            reasons.append(
                f"{server}: no answer within {timeout:.0f} s ({how}): a TLS client on a plain listener, or a firewall?"
            )
        except (errors.KafkaConnectionError, OSError) as exc:
            hint = {
                "PLAINTEXT": "the listener probably requires SASL or TLS: set STREAMS_KAFKA_SECURITY_PROTOCOL",
                "SSL": "the listener may not be TLS, or want a client certificate (STREAMS_KAFKA_SSL_CERTFILE, "
                "_KEYFILE) or a SASL login (SASL_SSL)",
                "SASL_PLAINTEXT": "the listener may be TLS (SASL_SSL) or not SASL at all",
                "SASL_SSL": "the listener may not be SASL (SSL)",
            }[protocol(settings)]
            reasons.append(f"{server}: the broker closed the connection ({type(exc).__name__}, {how}): {hint}")
    return Diagnosis("; ".join(reasons), refused == len(servers))


def _broker_message(exc: BaseException) -> str:
    # aiokafka's BrokerResponseError str() is "[Error 58] SaslAuthenticationFailed: <the broker's message>"
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
