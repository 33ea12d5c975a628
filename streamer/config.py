"""All configuration, read from the environment (prefix STREAMER_). The only module that reads it.

`broker_profile` says which broker the worker talks to: `kafka` (Apache Kafka, production) or `tansu` (the
embedded broker of `streamer local`, the demo and the tests). A few settings have a default per profile
(PROFILE_DEFAULTS, shown in the README's settings table); setting them explicitly always wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamer.core.cloud_events import default_source
from streamer.core.records import KeyRing
from streamer.logging import url_secrets

BrokerProfile = Literal["kafka", "tansu"]
Rebalancing = Literal["eager", "cooperative", "consumer"]
ProcessingGuarantee = Literal["exactly_once", "at_least_once"]
Stages = Literal["all", "scoring", "audit"]
ModelRegistryKind = Literal["file", "mlflow"]

# Defaults that depend on the broker. Tansu holds every fetch until max-wait expires, even with data there,
# and holds a JoinGroup reply for about half the session timeout; Apache Kafka does neither.
PROFILE_DEFAULTS: dict[str, dict[BrokerProfile, int | str]] = {
    "fetch_max_wait_ms": {"kafka": 500, "tansu": 10},
    "session_timeout_ms": {"kafka": 10_000, "tansu": 6_000},
    "heartbeat_interval_ms": {"kafka": 3_000, "tansu": 1_500},
    # Tansu is tested with eager rebalancing only.
    "rebalancing": {"kafka": "cooperative", "tansu": "eager"},
}


class Settings(BaseSettings):
    """Worker settings. Every field can be set as STREAMER_<FIELD_NAME>."""

    model_config = SettingsConfigDict(env_prefix="STREAMER_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="PostgreSQL connection URI for the audit table.",
    )
    model_dir: Path = Field(
        Path("onnx_models"),
        description="Directory holding registry.json and artifacts. With the `mlflow` registry: the default model, "
        "served when MLflow does not answer at start-up.",
    )
    model_registry: ModelRegistryKind = Field(
        "file",
        description="Where the champion comes from: `file` (registry.json in `model_dir`, polled every second) or "
        "`mlflow` (the `champion` alias of `mlflow_model_name` at `mlflow_tracking_uri`, polled every "
        "`mlflow_poll_interval_s`; needs the `mlflow` extra). Either way a new champion is verified before it "
        "serves, and a registry that does not answer leaves the serving model in place.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="The MLflow tracking server (`http://mlflow:5000`); artifacts are fetched through its proxy "
        "(`mlflow server --serve-artifacts`), so the worker needs HTTP to it only. Credentials in it are never logged.",
    )
    mlflow_model_name: str = Field(
        "german-credit", description="The registered model whose `champion` alias the worker serves."
    )
    mlflow_poll_interval_s: float = Field(
        3.0, gt=0, le=60,
        description="How often the worker asks MLflow for the champion: a promotion reaches every replica within "
        "this plus the download and verification (a few seconds).",
    )
    mlflow_timeout_s: int = Field(
        5, ge=1,
        description="Timeout of one MLflow request, made once with no retry (the next poll is the retry), so an "
        "MLflow that does not answer costs a poll this long, never minutes.",
    )
    input_topic: str = Field("loan-applications", description="Topic of LoanApplication events.")
    decision_topic: str = Field("loan-decisions", description="Topic of Decision events.")
    dlq_topic: str = Field("loan-applications-dlq", description="Dead-letter topic for invalid events.")
    event_source: str | None = Field(
        None, min_length=1, pattern=r"^\S+$",
        description="The CloudEvents `source` (a URI-reference) in the `ce_source` header of decisions and dead "
        "letters. Unset: `urn:streamer:<app_id>`.",
    )
    otel_enabled: bool = Field(
        False,
        description="One OpenTelemetry span per scoring batch, linked to the trace contexts (`traceparent`) of its "
        "records, sent over OTLP/HTTP to the exporter the standard `OTEL_EXPORTER_OTLP_*` variables name (default "
        "http://localhost:4318). Needs the `otel` extra; without it the worker refuses to start. Off: "
        "OpenTelemetry is not even imported.",
    )

    broker_profile: BrokerProfile = Field(
        "kafka",
        description="The broker: `kafka` (Apache Kafka) or `tansu` (the embedded one; `streamer local` and the "
        "demo set it). Only `tansu` turns on its workarounds: the lost-log and stall checks that seek, periodic "
        "topic re-creation, 10 s metadata refreshes.",
    )
    app_id: str = Field("streamer", description="Faust app id; also prefixes consumer group ids.")
    create_topics: bool = Field(
        False,
        description="Create the three topics when missing (and, on `tansu`, again after the broker lost them). Off "
        "by default: production topics are provisioned with their replication, retention and min.insync.replicas "
        "(k8s/base/kafka/topics.yaml). The embedded stack turns it on.",
    )
    topic_partitions: int = Field(8, ge=1, description="Partitions for topics the worker creates (`create_topics`).")
    topic_replication: int = Field(
        1, ge=1, description="Replication factor for topics the worker creates (`create_topics`)."
    )

    processing_guarantee: ProcessingGuarantee = Field(
        "exactly_once",
        description="exactly_once: decisions, dead letters and the consumed offsets are committed together in Kafka "
        "transactions, so a consumer reading with isolation.level=read_committed sees each decision once, across "
        "crashes, restarts and rebalances. at_least_once: no transactions, the lowest latency; a crash or a "
        "rebalance may publish a decision again (same application, new decision_id). The audit is exactly once "
        "either way. Tansu does not hide aborted transactions from read_committed consumers: there exactly_once "
        "behaves like at_least_once for what consumers see.",
    )
    commit_interval_ms: int = Field(
        100, ge=1,
        description="exactly_once: how long one transaction gathers batches before it commits (Kafka Streams' "
        "default for exactly-once). Decisions become visible to read_committed consumers when it commits.",
    )
    transaction_timeout_ms: int = Field(
        10_000, ge=1000,
        description="exactly_once: transaction.timeout.ms. A worker that dies mid-transaction holds back "
        "read_committed consumers of the decision topic until the broker aborts its transaction, this long.",
    )
    transactional_id: str | None = Field(
        None,
        description="exactly_once: the scorer producer's transactional.id. Unset: "
        "`<app_id>-scorer-<group_instance_id>` if that is set, else `<app_id>-scorer-<host name>-<web port>`: "
        "stable across restarts of a worker (its "
        "predecessor's open transaction is then aborted at once) and unique among live workers as long as host "
        "names are; random with web port 0. Two live workers must never share one (they would fence each other).",
    )

    stages: Stages = Field(
        "all",
        description="The batch loops this worker runs: `all` (scoring and audit in one process), `scoring` or "
        "`audit`. One process runs its Python on one core at a time (the GIL); with decision records, the audit "
        "in a process of its own took one 2-core machine from 5,400-6,200 to 9,000-9,500 applications/s "
        "(bench/results/stages-split-2026-12-02.md). Either kind scales out on its own: each is a consumer group.",
    )

    batch_max_events: int = Field(1000, ge=1, description="Largest micro-batch scored in one ONNX call.")
    batch_max_wait_ms: int = Field(5, ge=0, description="Longest wait to fill a micro-batch.")
    max_event_bytes: int = Field(65_536, ge=1024, description="Larger application values are dead-lettered.")
    audit_batch_max_rows: int = Field(2000, ge=1, description="Largest batch written to Postgres per tx.")
    audit_writers: int = Field(
        2, ge=1, description="Audit transactions under way at once, each on its own Postgres connection."
    )
    audit_retry_max_s: float = Field(10.0, gt=0, description="Cap of the back-off while Postgres is down.")
    audit_max_batch_attempts: int = Field(
        10, ge=2,
        description="Tries of a failing audit batch before its records are written one at a time; one that still "
        "fails alone while Postgres answers is dead-lettered (retries_exhausted), never retried forever.",
    )
    audit_write_timeout_s: float = Field(
        30.0, gt=0,
        description="Postgres cancels an audit statement, or a transaction left idle, after this long "
        "(statement_timeout); a write that had no answer 5 s later (a frozen or vanished database) drops its "
        "connection. The batch is retried either way.",
    )

    fetch_max_wait_ms: int = Field(
        500, ge=1,
        description="fetch.wait.max.ms of the scoring consumer. Kafka answers a fetch as soon as records arrive; "
        "Tansu holds it for the whole wait, so there it must be short.",
    )
    audit_fetch_max_wait_ms: int = Field(
        500, ge=1, description="fetch.wait.max.ms of the audit consumer (latency matters less than broker load)."
    )
    session_timeout_ms: int = Field(
        10_000, ge=6000,
        description="session.timeout.ms: a crashed worker's partitions move after this long (Kafka's minimum: "
        "6000). Tansu holds a JoinGroup reply for about half of it.",
    )
    heartbeat_interval_ms: int = Field(3000, ge=100, description="heartbeat.interval.ms (a third of the session).")
    rebalancing: Rebalancing = Field(
        "cooperative",
        description="How the consumer groups rebalance. cooperative: cooperative-sticky, only the partitions that "
        "move are revoked and the others keep flowing. eager: every rebalance revokes everything (librdkafka's "
        "default strategies). consumer: KIP-848's protocol (group.protocol=consumer; Apache Kafka 4+), where the "
        "broker assigns, incrementally; session and heartbeat times are then the broker's.",
    )
    group_instance_id: str | None = Field(
        None,
        description="group.instance.id (static membership): a member back within session.timeout.ms under the "
        "same id keeps its partitions, with no rebalance. Only for a stable identity (a StatefulSet pod's name); "
        "two live members must never share one, and a static member that leaves is not noticed before the "
        "session timeout.",
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000,
        description="max.poll.interval.ms, also the rebalance timeout. A loop revoked and not assigned again "
        "for this long makes the worker unready; a shorter rebalance does not.",
    )
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

    record_keys: SecretStr | None = Field(
        None,
        description="Decision-record keys, `key id:base64 of 32 random bytes`, comma-separated (from a k8s Secret). "
        "The scorer seals each decision's record (the application and the model's inputs) into its "
        "`streamer-record` header under STREAMER_RECORD_KEY_ID; the audit and `streamer decisions` open records "
        "with any key listed, so keep old keys listed while rows sealed under them are kept. Unset: decisions "
        "carry no record, and their audit rows none (logged once at start: decision_records_disabled).",
    )
    record_key_id: str | None = Field(
        None, description="The record key that seals; may be left unset when STREAMER_RECORD_KEYS holds one key."
    )

    web_port: int = Field(6066, ge=0, le=65535, description="Faust web port (health, metrics).")
    data_dir: Path = Field(Path(".streamer/faust"), description="Faust's data directory.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="json lines, a console renderer, or auto (console on a TTY)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """Fill the settings left unset with their default for the broker profile."""
        if not isinstance(data, dict):
            return data
        profile = data.get("broker_profile", "kafka")
        if profile not in ("kafka", "tansu"):
            return data  # the field's own validation says what is wrong
        return {**{name: by_profile[profile] for name, by_profile in PROFILE_DEFAULTS.items()}, **data}

    def cloud_event_source(self) -> str:
        return self.event_source or default_source(self.app_id)

    @model_validator(mode="after")
    def _mlflow_needs_its_server(self) -> Settings:
        if self.model_registry == "mlflow" and not self.mlflow_tracking_uri:
            raise ValueError("STREAMER_MODEL_REGISTRY=mlflow needs STREAMER_MLFLOW_TRACKING_URI")
        return self

    def record_key_ring(self) -> KeyRing | None:
        """The decision-record keys, or None when none are configured; KeyRingError for a bad setting. Not a
        validator: pydantic's errors quote the input, and this one is a key (the worker calls it at start)."""
        if self.record_keys is None or not self.record_keys.get_secret_value().strip():
            return None
        return KeyRing.parse(self.record_keys.get_secret_value(), self.record_key_id)

    def scorer_group(self) -> str:
        return f"{self.app_id}-scorer"

    def audit_group(self) -> str:
        return f"{self.app_id}-audit"

    def secret_values(self) -> list[str]:
        """What logs must never show: the database URL's password (libpq quotes a URL it cannot parse
        back in its error), the SASL password, a password in the MLflow tracking URI and the record keys."""
        secrets = url_secrets(self.database_url.get_secret_value())
        if self.mlflow_tracking_uri is not None:
            secrets += url_secrets(self.mlflow_tracking_uri)
        if self.sasl_password is not None:
            secrets.append(self.sasl_password.get_secret_value())
        if self.record_keys is not None:  # each key's base64 as well as the whole setting
            keys = self.record_keys.get_secret_value()
            secrets.extend([keys, *(part.partition(":")[2].strip() for part in keys.split(","))])
        return secrets
