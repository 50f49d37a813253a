"""Python values in, affect.v1 messages out. Every check happens here, before anything is
sent: a wrong shape or dtype raises ValueError naming the argument and what it expects."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence, Union

import numpy as np

from .proto import signals_pb2, vision_pb2

#: What `analyze_frame` and friends take as an image.
ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]

KINDS = {
    "eeg": signals_pb2.SIGNAL_KIND_EEG,
    "eda": signals_pb2.SIGNAL_KIND_EDA,
    "ecg": signals_pb2.SIGNAL_KIND_ECG,
    "ppg": signals_pb2.SIGNAL_KIND_PPG,
    "respiration": signals_pb2.SIGNAL_KIND_RESPIRATION,
    "other": signals_pb2.SIGNAL_KIND_OTHER,
}


def image_input(image: ImageLike, color: str = "RGB", argument: str = "image") -> vision_pb2.ImageInput:
    """A path, encoded bytes (JPEG/PNG), an H x W x 3 uint8 array (`color` says "RGB" or
    "BGR", as OpenCV gives) or a PIL image."""
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return vision_pb2.ImageInput(encoded=f.read())
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ValueError(f"{argument}: the bytes are empty (expected JPEG or PNG bytes)")
        return vision_pb2.ImageInput(encoded=data)
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        # A PIL image (PIL is not a dependency; its interface is enough).
        image = np.asarray(image.convert("RGB"))
        color = "RGB"
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{argument}: expected an H x W x 3 array, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"{argument}: expected dtype uint8 (0-255 per channel), got {image.dtype}")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"{argument}: the image is empty ({image.shape})")
        formats = {"RGB": vision_pb2.PIXEL_FORMAT_RGB8, "BGR": vision_pb2.PIXEL_FORMAT_BGR8}
        if color not in formats:
            raise ValueError(f"color: 'RGB' or 'BGR', got {color!r}")
        pixels = np.ascontiguousarray(image).tobytes()
        return vision_pb2.ImageInput(
            raw=vision_pb2.RawImage(
                pixels=pixels, width=image.shape[1], height=image.shape[0], format=formats[color]
            )
        )
    raise ValueError(
        f"{argument}: expected a path, JPEG/PNG bytes, an H x W x 3 uint8 numpy array or a PIL image, got {type(image).__name__}"
    )


def kind(value: Union[str, int], argument: str) -> int:
    if isinstance(value, str):
        try:
            return KINDS[value.lower()]
        except KeyError:
            raise ValueError(f"{argument}: {value!r} is not one of {sorted(KINDS)}") from None
    if value in KINDS.values():
        return int(value)
    raise ValueError(f"{argument}: {value!r} is not a signal kind ({sorted(KINDS)})")


def channel_major(array: Any, argument: str) -> np.ndarray:
    """A (channels, samples) float array, as BrainFlow's get_board_data gives rows; a 1-D
    array is one channel."""
    a = np.asarray(array)
    if a.ndim == 1:
        a = a[np.newaxis, :]
    if a.ndim != 2:
        raise ValueError(f"{argument}: expected a (channels, samples) array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{argument}: expected real numbers, got dtype {a.dtype}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{argument}: expected at least one channel and one sample, got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def positive(value: float, argument: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{argument}: expected a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{argument}: expected a positive number, got {value!r}")
    return v


def stream_info(
    stream_id: str, kind_value: Union[str, int], rate_hz: float, labels: Sequence[str], units: Sequence[str]
) -> signals_pb2.StreamInfo:
    return signals_pb2.StreamInfo(
        stream_id=stream_id,
        kind=kind(kind_value, f"kinds[{stream_id!r}]"),
        nominal_rate_hz=positive(rate_hz, f"rates[{stream_id!r}]"),
        channels=[signals_pb2.ChannelInfo(label=l, unit=u) for l, u in zip(labels, units)],
    )


def per_stream(value: Any, ids: Sequence[str], argument: str, default: Any = None) -> list:
    """One value per stream, from a mapping by id, a sequence in order, or one for all."""
    if value is None:
        return [default] * len(ids)
    if isinstance(value, Mapping):
        missing = [i for i in ids if i not in value]
        if missing:
            raise ValueError(f"{argument}: no value for stream(s) {missing}")
        return [value[i] for i in ids]
    if isinstance(value, (list, tuple)):
        if len(value) != len(ids):
            raise ValueError(f"{argument}: {len(value)} values for {len(ids)} streams")
        return list(value)
    return [value] * len(ids)


def interleaved(channels_by_samples: np.ndarray) -> np.ndarray:
    """Channel-major (channels, samples) to the wire's sample-major order."""
    return np.ascontiguousarray(channels_by_samples.T).ravel()
