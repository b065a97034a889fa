"""Kafka security settings: secrets never shown, client and Faust keyword arguments, TLS contexts, the broker's
secure listeners, and the sentences the CLI says when a login or handshake cannot work (no broker needed)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import faust
import pytest
from click.testing import CliRunner
from faust.types.auth import AuthProtocol

from streams.cli import main
from streams.kafka.client import (
    KafkaSecurityError,
    aiokafka_kwargs,
    check,
    describe,
    diagnose,
    faust_broker_kwargs,
    ssl_context,
)
from streams.kafka.local import Address, BrokerError, EmbeddedBroker, SecureListeners, parse_bootstrap
from streams.settings import SECRET_MASK, Settings, is_secret, secrets_of
from tests.factories.pki import Pki, make_pki

PASSWORD = "pw-3f9c-never-shown"
TOKEN = "tok-81ab-never-shown"


def sasl(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_username": "alice",
        "kafka_sasl_password": PASSWORD,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- settings -------------------------------------------------------------------------------------------------
def test_laptop_default_is_plaintext_without_credentials():
    s = Settings.from_env({})
    assert s.kafka_security_protocol == "PLAINTEXT" and s.kafka_ssl_check_hostname is True
    assert aiokafka_kwargs(s) == {"bootstrap_servers": ["localhost:9092"], "security_protocol": "PLAINTEXT"}
    assert faust_broker_kwargs(s) == {"broker": ["kafka://localhost:9092"]}


@pytest.mark.parametrize("name", ["kafka_sasl_password", "kafka_ssl_key_password", "takedown_token", "desk_token"])
def test_secret_settings_are_masked_in_config_output_and_repr(name):
    s = Settings.from_env({"STREAMS_" + name.upper(): PASSWORD})
    assert is_secret(name) and secrets_of(s) == [PASSWORD]
    assert dict(s.as_env_doc())["STREAMS_" + name.upper()] == SECRET_MASK
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.as_env_doc())


def test_unset_secret_shows_empty_so_an_operator_sees_it_is_missing():
    assert dict(Settings().as_env_doc())["STREAMS_KAFKA_SASL_PASSWORD"] == ""


def test_as_env_round_trips_every_setting_secrets_included():
    s = sasl(takedown_token=TOKEN, kafka_ssl_check_hostname=False)
    assert Settings.from_env(s.as_env()) == s


@pytest.mark.parametrize(("word", "value"), [("true", True), ("ON", True), ("1", True), ("no", False), ("0", False)])
def test_boolean_settings_read_the_usual_words(word, value):
    assert Settings.from_env({"STREAMS_KAFKA_SSL_CHECK_HOSTNAME": word}).kafka_ssl_check_hostname is value


def test_a_misspelt_boolean_is_refused_not_read_as_false():
    with pytest.raises(ValueError, match="STREAMS_KAFKA_SSL_CHECK_HOSTNAME"):
        Settings.from_env({"STREAMS_KAFKA_SSL_CHECK_HOSTNAME": "flase"})


def test_streams_config_prints_stars_for_the_password_and_the_token():
    env = {"STREAMS_KAFKA_SASL_PASSWORD": PASSWORD, "STREAMS_TAKEDOWN_TOKEN": TOKEN}
    out = CliRunner().invoke(main, ["config"], env=env).output
    assert PASSWORD not in out and TOKEN not in out
    assert "STREAMS_KAFKA_SASL_PASSWORD=***" in out and "STREAMS_TAKEDOWN_TOKEN=***" in out


# -- aiokafka and Faust keyword arguments ----------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "scram-sha-512"])
def test_sasl_plaintext_passes_mechanism_and_login_without_tls(mechanism):
    kw = aiokafka_kwargs(sasl(kafka_sasl_mechanism=mechanism, kafka_bootstrap="SASL_PLAINTEXT://k1:9094,k2"))
    assert kw == {
        "bootstrap_servers": ["k1:9094", "k2:9092"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism.upper(),
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    }


def test_faust_gets_sasl_credentials_and_kafka_urls():
    kw = faust_broker_kwargs(sasl(kafka_sasl_mechanism="SCRAM-SHA-256", kafka_bootstrap="a:1,b:2"))
    creds = kw["broker_credentials"]
    assert kw["broker"] == ["kafka://a:1", "kafka://b:2"]
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol is AuthProtocol.SASL_PLAINTEXT
    assert (creds.username, creds.password, creds.mechanism.value) == ("alice", PASSWORD, "SCRAM-SHA-256")
    assert PASSWORD not in repr(creds)


def test_faust_sasl_ssl_credentials_carry_the_tls_context(pki):
    creds = faust_broker_kwargs(sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=str(pki.ca)))[
        "broker_credentials"
    ]
    assert creds.protocol is AuthProtocol.SASL_SSL and isinstance(creds.ssl_context, ssl.SSLContext)


def test_faust_ssl_only_gets_ssl_credentials(pki):
    s = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca))
    creds = faust_broker_kwargs(s)["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol is AuthProtocol.SSL


def test_faust_app_accepts_the_keyword_arguments(pki):
    s = sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=str(pki.ca))
    app = faust.App("sec-unit", **faust_broker_kwargs(s), autodiscover=False)
    assert app.conf.broker_credentials.protocol is AuthProtocol.SASL_SSL
    assert [str(u) for u in app.conf.broker] == ["kafka://localhost:9092"]


# -- TLS ------------------------------------------------------------------------------------------------------
def test_tls_context_verifies_the_broker_and_its_host_name_by_default(pki):
    ctx = ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca)))
    assert ctx is not None and ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert any("article-streams ca" in str(c.get("subject")) for c in ctx.get_ca_certs())


def test_check_hostname_off_still_verifies_the_chain(pki):
    s = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca), kafka_ssl_check_hostname=False)
    ctx = ssl_context(s)
    assert ctx is not None and ctx.check_hostname is False and ctx.verify_mode is ssl.CERT_REQUIRED


def test_no_tls_context_for_plaintext_or_sasl_plaintext():
    assert ssl_context(Settings()) is None and ssl_context(sasl()) is None
    assert "ssl_context" not in aiokafka_kwargs(sasl())


@pytest.mark.parametrize("encrypted", [False, True])
def test_client_certificate_and_key_load(pki, encrypted):
    s = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(pki.ca),
        kafka_ssl_certfile=str(pki.client_cert),
        kafka_ssl_keyfile=str(pki.client_key_encrypted if encrypted else pki.client_key),
        kafka_ssl_key_password=pki.key_password if encrypted else "",
    )
    assert isinstance(aiokafka_kwargs(s)["ssl_context"], ssl.SSLContext)


def test_wrong_key_password_is_refused_without_repeating_it(pki):
    s = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile=str(pki.client_cert),
        kafka_ssl_keyfile=str(pki.client_key_encrypted),
        kafka_ssl_key_password=PASSWORD,
    )
    with pytest.raises(KafkaSecurityError, match="could not be loaded") as info:
        ssl_context(s)
    assert PASSWORD not in str(info.value)


def test_system_cas_are_used_when_no_ca_file_is_given():
    ctx = ssl_context(Settings(kafka_security_protocol="SSL"))
    assert ctx is not None and ctx.verify_mode is ssl.CERT_REQUIRED


# -- refusals that need no broker -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"kafka_security_protocol": "TLS"}, "STREAMS_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "STREAMS_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_username": ""}, "STREAMS_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_password": ""}, "STREAMS_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"}, "SSL_CAFILE"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": __file__}, "without STREAMS_KAFKA_SSL_CERTFILE"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_variable(overrides, names):
    with pytest.raises(KafkaSecurityError, match=names) as info:
        check(sasl(**overrides))
    assert PASSWORD not in str(info.value)


def test_describe_names_protocol_mechanism_and_user_never_the_password():
    assert describe(sasl()) == "SASL_PLAINTEXT SCRAM-SHA-512 as 'alice'"
    assert describe(Settings()) == "PLAINTEXT"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_diagnosis_tells_nothing_listening_from_a_refused_login():
    d = asyncio.run(diagnose(sasl(kafka_bootstrap=f"127.0.0.1:{_free_port()}"), timeout=2))
    assert d.nothing_listens and "nothing listens" in d.message


def test_cli_says_which_setting_is_wrong_instead_of_a_traceback():
    env = {"STREAMS_KAFKA_SECURITY_PROTOCOL": "SSL", "STREAMS_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}
    result = CliRunner().invoke(main, ["topics", "list"], env=env)
    assert result.exit_code == 1 and "STREAMS_KAFKA_SSL_CAFILE=/nonexistent/ca.pem" in result.output
    assert "Traceback" not in result.output


# -- the embedded broker's secure listeners -------------------------------------------------------------------
def _broker(tmp_path: Path, **secure: object) -> EmbeddedBroker:
    s = Settings(kafka_bootstrap="localhost:29094", kafka_controller_port=29093, kafka_home=str(tmp_path))
    return EmbeddedBroker(s, secure=SecureListeners(**secure))  # type: ignore[arg-type]


def test_sasl_listener_gets_scram_and_plain_logins_on_its_own_port(tmp_path):
    b = _broker(tmp_path, users={"alice": "s3cret"}, sasl_port=29092)
    props = b._write_properties(Address("localhost", 29093)).read_text()
    assert "listeners=PLAINTEXT://localhost:29094,SASL_PLAINTEXT://localhost:29092,CONTROLLER://" in props
    assert "inter.broker.listener.name=PLAINTEXT" in props
    assert "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN" in props
    assert "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=" in props
    assert 'user_alice="s3cret"' in props  # PLAIN checks against the JAAS entries
    assert (b.dir / "server.properties").stat().st_mode & 0o077 == 0, "the file holds passwords: owner only"
    assert b._scram_format_args() == [
        "--add-scram",
        "SCRAM-SHA-256=[name=alice,password=s3cret]",
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=s3cret]",
    ]
    assert b.address("SASL_PLAINTEXT") == "localhost:29092"


def test_plain_broker_has_no_secure_listeners(tmp_path):
    s = Settings(kafka_bootstrap="localhost:29094", kafka_controller_port=29093, kafka_home=str(tmp_path))
    b = EmbeddedBroker(s)
    props = b._write_properties(Address("localhost", 29093)).read_text()
    assert "sasl" not in props and "ssl" not in props
    assert "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" in props
    with pytest.raises(BrokerError, match="no SASL_PLAINTEXT listener"):
        b.address("SASL_PLAINTEXT")


def test_tls_listeners_use_pem_stores_and_require_client_certificates(tmp_path):
    b = _broker(tmp_path, users={"a": "b"}, ssl_port=29095, sasl_ssl_port=29096, keystore="/k.pem", truststore="/t.pem")
    props = b._write_properties(Address("localhost", 29093)).read_text()
    for line in (
        "ssl.keystore.type=PEM",
        "ssl.keystore.location=/k.pem",
        "ssl.truststore.location=/t.pem",
        "listener.name.ssl.ssl.client.auth=required",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=",
    ):
        assert line in props


@pytest.mark.parametrize(
    ("secure", "message"),
    [
        ({"users": {"alice": "a,b"}, "sasl_port": 29092}, "without"),
        ({"users": {"al ice": "x"}, "sasl_port": 29092}, "without"),
        ({"ssl_port": 29095, "truststore": "/t.pem"}, "keystore"),
        ({"ssl_port": 29095, "keystore": "/k.pem"}, "truststore"),
    ],
)
def test_broker_refuses_secure_listeners_it_cannot_write(tmp_path, secure, message):
    with pytest.raises(BrokerError, match=message):
        _broker(tmp_path, **secure)._check_secure()


def test_bootstrap_accepts_any_listener_scheme():
    assert parse_bootstrap("SASL_SSL://a:1,SSL://b:2") == [Address("a", 1), Address("b", 2)]
