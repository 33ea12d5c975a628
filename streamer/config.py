"""All configuration, read from the environment (prefix STREAMER_). The only module that reads it.

Kafka timing defaults suit both Apache Kafka and the embedded Tansu broker; see README "Kafka settings".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Worker settings. Every field can be set as STREAMER_<FIELD_NAME>."""

    model_config = SettingsConfigDict(env_prefix="STREAMER_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="PostgreSQL connection URI for the audit table.",
    )
    model_dir: Path = Field(Path("onnx_models"), description="Directory holding registry.json and artifacts.")
    input_topic: str = Field("loan-applications", description="Topic of LoanApplication events.")
    decision_topic: str = Field("loan-decisions", description="Topic of Decision events.")
    dlq_topic: str = Field("loan-applications-dlq", description="Dead-letter topic for invalid events.")

    app_id: str = Field("streamer", description="Faust app id; also prefixes consumer group ids.")
    topic_partitions: int = Field(8, ge=1, description="Partitions for topics the worker creates.")
    topic_replication: int = Field(1, ge=1, description="Replication factor for topics the worker creates.")

    batch_max_events: int = Field(1000, ge=1, description="Largest micro-batch scored in one ONNX call.")
    batch_max_wait_ms: int = Field(5, ge=0, description="Longest wait to fill a micro-batch.")
    max_event_bytes: int = Field(65_536, ge=1024, description="Larger application values are dead-lettered.")
    audit_batch_max_rows: int = Field(2000, ge=1, description="Largest batch written to Postgres per tx.")
    audit_writers: int = Field(
        2, ge=1, description="Audit transactions under way at once, each on its own Postgres connection."
    )
    audit_retry_max_s: float = Field(10.0, gt=0, description="Cap of the back-off while Postgres is down.")

    # librdkafka timing. Tansu holds a fetch until max-wait expires even when data is there, and holds
    # JoinGroup for about half the session timeout, so both are kept short; both are valid on Kafka.
    fetch_max_wait_ms: int = Field(10, ge=1, description="fetch.wait.max.ms of the scoring consumer.")
    audit_fetch_max_wait_ms: int = Field(
        500, ge=1, description="fetch.wait.max.ms of the audit consumer (latency matters less than broker load)."
    )
    session_timeout_ms: int = Field(6000, ge=1000, description="session.timeout.ms (Kafka's minimum: 6000).")
    heartbeat_interval_ms: int = Field(1500, ge=100, description="heartbeat.interval.ms.")
    max_poll_interval_ms: int = Field(300_000, ge=1000, description="max.poll.interval.ms.")
    consumer_queue_max_kbytes: int = Field(
        16_384, ge=1024,
        description="queued.max.messages.kbytes of each consumer: records fetched ahead, held in memory.",
    )
    linger_ms: int = Field(5, ge=0, description="Producer linger.ms for decision and DLQ events (Kafka 4's default).")
    delivery_timeout_ms: int = Field(
        30_000, ge=1000,
        description="Producer message.timeout.ms: a record not acknowledged by then fails its batch, which is redone "
        "on a new producer.",
    )
    gil_switch_interval_s: float = Field(
        0.0005, gt=0, description="sys.setswitchinterval in the worker; shorter hands the GIL between the loops sooner."
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol."
    )
    sasl_mechanism: str | None = Field(None, description="Kafka sasl.mechanism, e.g. SCRAM-SHA-512.")
    sasl_username: str | None = Field(None, description="Kafka sasl.username.")
    sasl_password: SecretStr | None = Field(None, description="Kafka sasl.password (never logged).")
    ssl_ca_location: Path | None = Field(None, description="CA bundle that signed the brokers' certificates.")

    web_port: int = Field(6066, ge=0, le=65535, description="Faust web port (health, metrics).")
    data_dir: Path = Field(Path(".streamer/faust"), description="Faust's data directory.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="json lines, a console renderer, or auto (console on a TTY)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")

    def scorer_group(self) -> str:
        return f"{self.app_id}-scorer"

    def audit_group(self) -> str:
        return f"{self.app_id}-audit"
