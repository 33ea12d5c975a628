"""Several Apache Kafka nodes in one KRaft quorum, replicated as production is: for leader-failover tests."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

from confluent_kafka.admin import AdminClient

from streamer.local.apache_kafka import JVM_OPTS, ApacheKafka, create_offsets_topic, random_cluster_id
from streamer.local.kafka_jars import KafkaUnavailable
from streamer.local.processes import free_port


class ApacheKafkaCluster:
    """`n` combined broker+controller nodes (ids 1..n) forming one KRaft quorum with static voters.

    Topics default to replication factor min(3, n) with min.insync.replicas 2, as do the internal ones.
    """

    def __init__(
        self,
        libs_dir: Path,
        data_dir: Path,
        n: int = 3,
        properties: Mapping[str, str] | None = None,
        jvm_opts: tuple[str, ...] = JVM_OPTS,
        class_archive: Path | None = None,
    ) -> None:
        rf, isr = str(min(3, n)), str(min(2, n))
        cluster_props = {
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            **(properties or {}),
        }
        ports = {i: (free_port(), free_port()) for i in range(1, n + 1)}
        voters = ",".join(f"{i}@127.0.0.1:{controller}" for i, (_, controller) in ports.items())
        cluster_id = random_cluster_id()
        self.nodes: dict[int, ApacheKafka] = {
            i: ApacheKafka(
                libs_dir,
                data_dir / f"node-{i}",
                node_id=i,
                broker_port=broker,
                controller_port=controller,
                voters=voters,
                cluster_id=cluster_id,
                properties=cluster_props,
                jvm_opts=jvm_opts,
                class_archive=class_archive,
            )
            for i, (broker, controller) in ports.items()
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values())

    def _live_bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values() if node.running) or self.bootstrap

    def start(self, timeout: float = 90.0) -> Self:
        """Starts every node and waits until each one sees all n brokers unfenced."""
        try:
            # Formatting is a short JVM run per node: in parallel. The brokers are launched from this thread,
            # not from pool threads: PR_SET_PDEATHSIG fires when the *thread* that forked the JVM exits.
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(ApacheKafka.format_storage, self.nodes.values()))
            for node in self.nodes.values():
                node.launch()  # all before any wait: a node is ready only once a majority of voters runs
            deadline = time.monotonic() + timeout
            for node in self.nodes.values():
                node.wait_ready(max(1.0, deadline - time.monotonic()), brokers=len(self.nodes))
        except BaseException:
            self.kill_all()
            raise
        create_offsets_topic(self.bootstrap)
        return self

    def stop(self, timeout: float = 15.0, last_grace: float = 1.5) -> None:
        """SIGTERM to every node at once, SIGKILL to those still running after `timeout` seconds.

        The KRaft leader's graceful shutdown waits (5 s, hard-coded) for another leader to be elected, which
        cannot happen once the other nodes have gone: the last node still running `last_grace` seconds after
        all the others exited gets SIGKILL. Its broker side has shut down cleanly by then.
        """
        running = [node for node in self.nodes.values() if node.running]
        for node in running:
            node.terminate()
        deadline = time.monotonic() + timeout
        alone_since: float | None = None
        while True:
            alive = [node for node in running if node.running]
            now = time.monotonic()
            if len(alive) == 1 and len(running) > 1:
                alone_since = alone_since or now
            if not alive or now > deadline or (alone_since is not None and now - alone_since > last_grace):
                break
            time.sleep(0.05)
        for node in running:
            node.kill()  # a no-op for those that have exited; closes their log files

    def kill_all(self) -> None:
        for node in self.nodes.values():
            node.kill()

    def kill(self, node_id: int) -> None:
        self.nodes[node_id].kill()

    def restart(self, node_id: int, timeout: float = 60.0) -> None:
        """Starts a stopped or killed node again on its old data dir and ports; waits until it is unfenced."""
        node = self.nodes[node_id]
        node.launch()
        node.wait_ready(timeout, brokers=len(self.nodes))

    def _partition(self, topic: str, partition: int, timeout: float) -> tuple[int, list[int]]:
        admin = AdminClient({"bootstrap.servers": self._live_bootstrap(), "log_level": 0})
        metadata = admin.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise KafkaUnavailable(f"metadata for {topic}: {metadata.error}")
        found = metadata.partitions[partition]
        return int(found.leader), [int(r) for r in found.isrs]

    def leader(self, topic: str, partition: int = 0, timeout: float = 10.0) -> int:
        """The node id leading `topic`/`partition` (-1 while it has none), from a live node's metadata."""
        return self._partition(topic, partition, timeout)[0]

    def isr(self, topic: str, partition: int = 0, timeout: float = 10.0) -> list[int]:
        """The in-sync replicas of `topic`/`partition`, from a live node's metadata."""
        return self._partition(topic, partition, timeout)[1]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
