"""Kafka settings reach the clients; secrets reach them and nothing else."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
from confluent_kafka import Consumer, Producer
from pydantic import SecretStr

from streamer.app.faust_auth import faust_credentials
from streamer.config import Settings
from streamer.runtime.clients import consumer_config, producer_config, transactional_id, transactional_producer_config

SECRET = "s3cr3t-Pa55"


def _sasl_ssl(tmp_path: Path) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(ssl.get_default_verify_paths().openssl_cafile).read_bytes())  # any real CA bundle
    return Settings(
        kafka_bootstrap="b1:9093,b2:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        sasl_username="streamer", sasl_password=SecretStr(SECRET), ssl_ca_location=ca,
    )


class TestKafkaClientConfig:
    def test_sasl_ssl_settings_reach_consumers_and_producers(self, tmp_path: Path) -> None:
        s = _sasl_ssl(tmp_path)
        for config in (consumer_config(s, "g"), producer_config(s)):
            assert config["bootstrap.servers"] == "b1:9093,b2:9093"
            assert config["security.protocol"] == "SASL_SSL"
            assert config["sasl.mechanism"] == "SCRAM-SHA-512"
            assert config["sasl.username"] == "streamer"
            assert config["sasl.password"] == SECRET
            assert config["ssl.ca.location"] == str(tmp_path / "ca.pem")

    def test_plaintext_sends_no_credentials(self) -> None:
        config = producer_config(Settings())
        assert config["security.protocol"] == "PLAINTEXT"
        assert not {"sasl.username", "sasl.password", "sasl.mechanism"} & set(config)

    def test_consumers_commit_only_by_hand_and_producers_are_idempotent(self) -> None:
        assert consumer_config(Settings(), "g")["enable.auto.commit"] is False
        assert producer_config(Settings())["enable.idempotence"] is True
        assert producer_config(Settings())["acks"] == "all"

    def test_consumers_reset_to_the_earliest_offset_unless_told_to_report_an_error(self) -> None:
        assert consumer_config(Settings(), "g")["auto.offset.reset"] == "earliest"
        assert consumer_config(Settings(), "g", offset_reset="error")["auto.offset.reset"] == "error"

    def test_faust_gets_the_same_sasl_credentials(self, tmp_path: Path) -> None:
        credentials = faust_credentials(_sasl_ssl(tmp_path))
        assert isinstance(credentials, faust.SASLCredentials)
        assert credentials.username == "streamer"
        assert credentials.password == SECRET
        assert credentials.ssl_context is not None

    def test_the_password_never_shows_in_the_settings_text(self, tmp_path: Path) -> None:
        s = _sasl_ssl(tmp_path)
        assert SECRET not in repr(s) and SECRET not in str(s)
        assert SECRET not in s.model_dump_json()


class TestRebalancing:
    def test_apache_kafka_rebalances_cooperatively_and_tansu_eagerly_by_default(self) -> None:
        assert consumer_config(Settings(), "g")["partition.assignment.strategy"] == "cooperative-sticky"
        assert "partition.assignment.strategy" not in consumer_config(Settings(broker_profile="tansu"), "g")

    def test_the_consumer_protocol_leaves_session_and_assignment_to_the_broker(self) -> None:
        config = consumer_config(Settings(rebalancing="consumer"), "g")
        assert config["group.protocol"] == "consumer"
        assert not {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"} & set(config)

    def test_a_group_instance_id_makes_the_member_static(self) -> None:
        assert consumer_config(Settings(group_instance_id="streamer-0"), "g")["group.instance.id"] == "streamer-0"
        assert "group.instance.id" not in consumer_config(Settings(), "g")

    def test_every_protocol_gives_a_configuration_librdkafka_accepts(self) -> None:
        for rebalancing in ("eager", "cooperative", "consumer"):
            config = consumer_config(Settings(rebalancing=rebalancing, group_instance_id="w-1"), "g")
            Consumer(config).close()  # librdkafka checks the configuration when the client is made


class TestTransactionalId:
    def test_a_restarted_worker_keeps_its_id_and_two_on_one_host_differ(self) -> None:
        first, again = Settings(web_port=6066), Settings(web_port=6066)
        other = Settings(web_port=6067)
        assert transactional_id(first) == transactional_id(again) != transactional_id(other)

    def test_an_explicit_or_static_id_wins_and_an_ephemeral_port_gives_a_random_one(self) -> None:
        assert transactional_id(Settings(transactional_id="scorer-7")) == "scorer-7"
        assert transactional_id(Settings(group_instance_id="pod-3")) == "streamer-scorer-pod-3"
        assert transactional_id(Settings(web_port=0)) != transactional_id(Settings(web_port=0))

    def test_the_producer_is_transactional_and_its_timeouts_fit_librdkafka(self) -> None:
        config = transactional_producer_config(Settings(transaction_timeout_ms=10_000, delivery_timeout_ms=30_000))
        assert config["transactional.id"] and config["enable.idempotence"] is True
        assert config["message.timeout.ms"] <= config["transaction.timeout.ms"] == 10_000
        Producer(config)  # librdkafka refuses message.timeout.ms > transaction.timeout.ms at construction
