"""Every input the client checks before sending, fuzzed: random shapes, dtypes, values and
strings either build a message or raise ValueError naming the argument, never anything else
(no TypeError, IndexError or numpy error escapes). Seeded, so a failure reproduces."""

from __future__ import annotations

import numpy as np
import pytest

from affectd import _inputs, _requests, lsl

ARGUMENTS = ("arrays", "rates", "kinds", "labels", "units", "first_timestamps", "samples",
             "timestamps", "first_sample_index", "layout", "stream_id", "image", "color")
DTYPES = [np.float32, np.float64, np.int16, np.int64, np.uint8, np.bool_, np.complex64, object, "U3"]


def random_array(rng: np.random.Generator):
    ndim = int(rng.integers(0, 4))
    shape = tuple(int(rng.integers(0, 5)) for _ in range(ndim))
    dtype = DTYPES[int(rng.integers(len(DTYPES)))]
    if dtype == "U3":
        return np.full(shape, "ab")
    if dtype is object:
        return np.empty(shape, dtype=object)
    return (rng.normal(size=shape) * 100).astype(dtype)


def test_signal_arrays_and_chunks_build_or_raise_value_error():
    rng = np.random.default_rng(20261130)
    built = refused = 0
    for _ in range(3000):
        a = random_array(rng)
        rate = [256.0, 0.0, -1.0, float("nan"), float("inf"), "x", 1e-9][int(rng.integers(7))]
        kind = ["eeg", "EDA", "emg", 3, 99, None][int(rng.integers(6))]
        channels = int(rng.integers(1, 4))
        layout = ["samples", "channels", "rows"][int(rng.integers(3))]
        stamps = None if rng.random() < 0.5 else rng.normal(size=int(rng.integers(0, 6)))
        index = [None, 0, 5, -1][int(rng.integers(4))]
        try:
            _requests.analyze_signals({"s": a}, rate, kind, max_message_bytes=1 << 20)
            built += 1
        except ValueError as e:
            assert str(e).startswith(ARGUMENTS), str(e)
            refused += 1
        try:
            _requests.chunk({"s": channels}, "s", 0.0, a, timestamps=stamps, first_sample_index=index, layout=layout)
            built += 1
        except ValueError as e:
            assert str(e).startswith(ARGUMENTS), str(e)
            refused += 1
    assert built > 100 and refused > 100


def test_signal_chunks_packed_from_bytes_equal_the_element_wise_message():
    """The fast packing (array bytes merged as the wire's packed field) builds exactly the
    message that assigning element by element builds: values, NaN/inf, float32 rounding,
    empty arrays and timestamps included."""
    from affectd.proto import signals_pb2

    rng = np.random.default_rng(11)
    for n in [0, 1, 2, 17, 1000, 70000]:  # 70,000 f32: a length varint of three bytes
        for dtype in (np.float32, np.float64, np.int16, np.int64):
            samples = (rng.normal(size=n) * 1e3).astype(dtype)
            if n and dtype in (np.float32, np.float64):
                samples[0], samples[-1] = np.nan, np.inf
            stamps = None if n % 2 else np.cumsum(rng.random(n)) + 1e9
            fast = _requests.signal_chunk("eeg", 12.5, samples, stamps)
            slow = signals_pb2.SignalChunk(stream_id="eeg", first_timestamp=12.5, samples=[float(np.float32(v)) for v in samples])
            if stamps is not None:
                slow.timestamps.extend(float(v) for v in stamps)
            assert fast.SerializeToString() == slow.SerializeToString(), (n, dtype)


def test_images_build_or_raise_value_error():
    rng = np.random.default_rng(7)
    for _ in range(2000):
        candidates = [random_array(rng), bytes(rng.integers(0, 256, int(rng.integers(0, 8)), dtype=np.uint8)), 3, None, 2.5]
        image = candidates[int(rng.integers(len(candidates)))]
        color = ["RGB", "BGR", "rgb", ""][int(rng.integers(4))]
        try:
            _inputs.image_input(image, color)
        except ValueError as e:
            assert str(e).startswith(ARGUMENTS), str(e)


@pytest.mark.parametrize("seed", range(3))
def test_lsl_queries_parse_or_raise_value_error(seed):
    rng = np.random.default_rng(seed)
    alphabet = list("=,' abcEEGtypenamesource_id") + ["", "=="]
    for _ in range(3000):
        query = "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), int(rng.integers(0, 20))))
        try:
            predicate = lsl.predicate(query)
        except ValueError as e:
            assert repr(query) in str(e)
        else:
            # What parses is a conjunction of key='value' terms with known keys.
            for term in predicate.split(" and "):
                key, value = term.split("=", 1)
                assert key in lsl.QUERY_KEYS and value.startswith("'") and value.endswith("'")
