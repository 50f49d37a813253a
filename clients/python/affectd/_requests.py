"""Request building shared by the blocking and the asyncio clients."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from . import _inputs
from .proto import explain_pb2, signals_pb2, vision_pb2


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


# Field tags (field number << 3 | wire type 2) of SignalChunk's packed arrays (signals.proto).
_SAMPLES_TAG, _TIMESTAMPS_TAG = b"\x1a", b"\x22"


def signal_chunk(stream_id: str, first_timestamp: float, samples: Any, timestamps: Any = None) -> signals_pb2.SignalChunk:
    """A SignalChunk whose packed `samples` (float32) and `timestamps` (float64) are merged
    from the arrays' little-endian bytes, as they are on the wire: assigning a numpy array
    to a repeated field converts every element to a Python float (15 ms for 64,000 samples,
    against 0.03 ms here), which made the client, not the server, the limit on ingest."""
    message = signals_pb2.SignalChunk(stream_id=stream_id, first_timestamp=float(first_timestamp))
    packed = b""
    for tag, array, dtype in ((_SAMPLES_TAG, samples, "<f4"), (_TIMESTAMPS_TAG, timestamps, "<f8")):
        if array is not None and np.size(array):
            raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
            packed += tag + _varint(len(raw)) + raw
    message.MergeFromString(packed)
    return message


def frame_options_message(options: Union[None, Mapping[str, Any], vision_pb2.FrameOptions]) -> Optional[vision_pb2.FrameOptions]:
    if options is None or isinstance(options, vision_pb2.FrameOptions):
        return options
    return vision_pb2.FrameOptions(**options)


def _one_stream_list(value: Any, ids: Sequence[str]) -> Any:
    """A flat list of strings for a single stream is that stream's per-channel list."""
    if len(ids) == 1 and isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return [list(value)]
    return value


def analyze_signals(
    arrays: Union[Mapping[str, Any], Sequence[Any]],
    rates: Any,
    kinds: Any,
    *,
    labels: Any = None,
    units: Any = None,
    first_timestamps: Any = 0.0,
    window_s: float = 0.0,
    hop_s: float = 0.0,
    line_frequency_hz: float = 0.0,
    baseline_s: float = 0.0,
    max_message_bytes: int,
) -> signals_pb2.AnalyzeSignalsRequest:
    """`arrays`: {stream_id: (channels, samples) array} or a sequence (ids "s0", "s1", ...).
    `rates`, `kinds`, `labels`, `units`, `first_timestamps`: one per stream (a mapping by id,
    a sequence, or one value for all)."""
    if isinstance(arrays, Mapping):
        ids = [str(k) for k in arrays]
        values = list(arrays.values())
    elif isinstance(arrays, np.ndarray):
        ids, values = ["s0"], [arrays]
    else:
        values = list(arrays)
        ids = [f"s{i}" for i in range(len(values))]
    if not values:
        raise ValueError("arrays: expected at least one stream")
    data = [_inputs.channel_major(v, f"arrays[{i!r}]") for i, v in zip(ids, values)]
    rates_ = _inputs.per_stream(rates, ids, "rates")
    kinds_ = _inputs.per_stream(kinds, ids, "kinds")
    firsts = _inputs.per_stream(first_timestamps, ids, "first_timestamps", 0.0)
    labels_ = _inputs.per_stream(_one_stream_list(labels, ids), ids, "labels")
    units_ = _inputs.per_stream(_one_stream_list(units, ids), ids, "units")
    streams, chunks = [], []
    size = 0
    for sid, a, rate, kind, first, ls, us in zip(ids, data, rates_, kinds_, firsts, labels_, units_):
        n = a.shape[0]
        ls = [f"ch{c + 1}" for c in range(n)] if ls is None else list(ls)
        us = [""] * n if us is None else ([us] * n if isinstance(us, str) else list(us))
        if len(ls) != n or len(us) != n:
            raise ValueError(f"labels/units of stream {sid!r}: expected {n} (one per channel)")
        streams.append(_inputs.stream_info(sid, kind, rate, ls, us))
        samples = _inputs.interleaved(a)
        size += samples.nbytes
        chunks.append(signal_chunk(sid, first, samples))
    if size > max_message_bytes - 65536:
        raise ValueError(
            f"arrays: {size} bytes of samples exceed one request's limit ({max_message_bytes} bytes, the client's max_message_bytes and the server's server.max_message_bytes); send shorter arrays, or stream them in a session"
        )
    config = signals_pb2.SignalConfig(
        window_s=window_s, hop_s=hop_s, line_frequency_hz=line_frequency_hz, baseline_s=baseline_s
    )
    return signals_pb2.AnalyzeSignalsRequest(streams=streams, chunks=chunks, config=config)


def explain(
    image: Any = None,
    *,
    session_id: Optional[str] = None,
    color: str = "RGB",
    labels: Sequence[str] = (),
    backend: str = "",
    model: str = "",
    max_tokens: int = 0,
    temperature: float = 0.0,
    top_p: float = 0.0,
    seed: Optional[int] = None,
    include_image: bool = False,
    context: str = "",
    face_ids: Sequence[int] = (),
    frame_options: Any = None,
) -> explain_pb2.ExplainRequest:
    if (image is None) == (session_id is None):
        raise ValueError("explain: give exactly one of image and session_id")
    request = explain_pb2.ExplainRequest(
        labels=list(labels),
        backend=backend,
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        include_image=include_image,
        context=context,
        face_ids=list(face_ids),
    )
    if seed is not None:
        request.seed = seed
    options = frame_options_message(frame_options)
    if options is not None:
        request.frame_options.CopyFrom(options)
    if image is not None:
        request.image.CopyFrom(_inputs.image_input(image, color))
    else:
        request.session_id = session_id
    return request


def chunk(
    channels: Mapping[str, int],
    stream_id: str,
    first_timestamp: float,
    samples: Any,
    *,
    timestamps: Optional[Sequence[float]] = None,
    first_sample_index: Optional[int] = None,
    layout: str = "samples",
) -> signals_pb2.SignalChunk:
    """A session's SignalChunk, checked against the stream's channel count (`channels`:
    stream id -> channels, from the session's config)."""
    if stream_id not in channels:
        raise ValueError(f"stream_id: {stream_id!r} is not one of this session's streams {sorted(channels)}")
    n = channels[stream_id]
    a = np.asarray(samples)
    if layout == "channels":
        a = _inputs.channel_major(a, "samples")
        if a.shape[0] != n:
            raise ValueError(f"samples: expected ({n}, n_samples) for stream {stream_id!r} with layout='channels', got shape {a.shape}")
        a = a.T
    elif layout == "samples":
        if a.ndim == 1 and n == 1:
            a = a[:, np.newaxis]
        if a.ndim != 2 or a.shape[1] != n or a.shape[0] < 1:
            raise ValueError(f"samples: expected (n_samples, {n}) for stream {stream_id!r}, got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"samples: expected real numbers, got dtype {a.dtype}")
    else:
        raise ValueError(f"layout: 'samples' or 'channels', got {layout!r}")
    t = None
    if timestamps is not None:
        t = np.asarray(timestamps, dtype=np.float64)
        if t.shape != (a.shape[0],):
            raise ValueError(f"timestamps: expected {a.shape[0]} (one per sample), got shape {t.shape}")
    message = signal_chunk(stream_id, first_timestamp, a, t)
    if first_sample_index is not None:
        if int(first_sample_index) < 0:
            raise ValueError(f"first_sample_index: expected >= 0, got {first_sample_index}")
        message.first_sample_index = int(first_sample_index)
    return message
