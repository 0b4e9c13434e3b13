from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.core.partitioning import Partitioner


@given(st.text(min_size=1, max_size=40), st.integers(1, 64))
def test_matches_the_kafka_default_partitioner(lead_id: str, n: int) -> None:
    expected = DefaultPartitioner()(lead_id.encode(), list(range(n)), list(range(n)))
    assert Partitioner(n).partition_of(lead_id) == expected


def test_agrees_with_java_murmur2_vectors() -> None:
    # Vectors from Apache Kafka's UtilsTest.testMurmur2 (Java client).
    java = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536}
    for key, hashed in java.items():
        assert Partitioner(7).partition_of(key) == (hashed & 0x7FFFFFFF) % 7
