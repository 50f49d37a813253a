"""The live session (Affect.Stream): frames, signal chunks and markers up; results,
acknowledgements and warnings down, read by a background thread so that sending never
waits on reading."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import grpc
import numpy as np

from . import _inputs, _requests, tables
from .proto import affect_pb2_grpc, session_pb2, signals_pb2

#: What a callback may be registered for: the StreamResponse oneof names.
RESPONSE_KINDS = (
    "faces", "features", "fused", "ack", "signal_warning", "explain", "ended", "warning",
    "expression_event",
)


class SessionBroken(RuntimeError):
    """The stream broke (the server ended it with an error, or the connection went). The
    client never reconnects by itself: messages after `last_acknowledged` may not be
    recorded; resend them in a new session if they matter.

    `last_acknowledged`: the highest client_seq the server acknowledged (0: none);
    `last_sent`: the highest client_seq sent; `code`/`details`: the gRPC status."""

    def __init__(self, last_acknowledged: int, last_sent: int, code: Any, details: str):
        self.last_acknowledged = last_acknowledged
        self.last_sent = last_sent
        self.code = code
        self.details = details
        super().__init__(
            f"the session's stream broke ({getattr(code, 'name', code)}: {details}); "
            f"the server acknowledged client_seq up to {last_acknowledged} of {last_sent} sent"
        )


class _Closed:
    """The reader's last item: the stream's end, with the error if it broke."""

    def __init__(self, error: Optional[SessionBroken]):
        self.error = error


def stream_config(
    participant: str = "",
    streams: Sequence[Any] = (),
    *,
    session_id: str = "",
    metadata: Optional[Dict[str, str]] = None,
    no_record: bool = False,
    frame_options: Any = None,
    signal_config: Any = None,
    detect_every_n_frames: int = 0,
) -> session_pb2.SessionConfig:
    config = session_pb2.SessionConfig(
        session_id=session_id,
        participant=participant,
        no_record=no_record,
        metadata=dict(metadata or {}),
        detect_every_n_frames=detect_every_n_frames,
    )
    for s in streams:
        if isinstance(s, signals_pb2.StreamInfo):
            config.streams.append(s)
        elif isinstance(s, dict):
            config.streams.append(stream(**s))
        else:
            raise ValueError(f"streams: expected affectd.stream(...) or a dict of its arguments, got {type(s).__name__}")
    options = _requests.frame_options_message(frame_options)
    if options is not None:
        config.frame_options.CopyFrom(options)
    if signal_config is not None:
        if isinstance(signal_config, dict):
            signal_config = signals_pb2.SignalConfig(**signal_config)
        config.signal_config.CopyFrom(signal_config)
    return config


def stream(
    stream_id: str,
    kind: Any,
    rate_hz: float,
    labels: Optional[Sequence[str]] = None,
    units: Any = "",
    channels: Optional[int] = None,
) -> signals_pb2.StreamInfo:
    """Describes one signal stream of a session: `kind` "eeg", "eda", "ecg", "ppg",
    "respiration" or "other"; `rate_hz` its nominal rate; `labels` one per channel (or give
    `channels` for ch1..chN); `units` one per channel or one for all (e.g. "uV", "uS")."""
    if labels is None:
        if channels is None:
            raise ValueError(f"stream {stream_id!r}: give labels (one per channel) or channels (a count)")
        labels = [f"ch{c + 1}" for c in range(int(channels))]
    labels = list(labels)
    if not labels:
        raise ValueError(f"stream {stream_id!r}: at least one channel")
    unit_list = [units] * len(labels) if isinstance(units, str) else list(units)
    if len(unit_list) != len(labels):
        raise ValueError(f"units of stream {stream_id!r}: {len(unit_list)} for {len(labels)} channels")
    return _inputs.stream_info(stream_id, kind, rate_hz, labels, unit_list)


class Session:
    """One live session. Open it with `Client.session(...)` and use it as a context manager:
    leaving the block ends the session and waits for the server's last answers.

    Results arrive on a background thread. Take them either way, or both:
    - callbacks, `session.on("faces", fn)` (run on the reader thread: keep them short);
    - iteration, `for response in session:` (StreamResponse messages, until SessionEnded).

    Every send returns the message's client_seq. The server acknowledges in order once a
    message is durably recorded: `unacknowledged()` and `wait_acknowledged()` tell what is
    not yet. A broken stream raises `SessionBroken` (from sends, iteration, waits and the
    end) with the last acknowledged client_seq; nothing reconnects silently."""

    def __init__(
        self,
        stub: affect_pb2_grpc.AffectStub,
        config: session_pb2.SessionConfig,
        *,
        keep_responses: bool = True,
        callbacks: Optional[Dict[str, Callable[[Any], None]]] = None,
    ):
        self._channels = {s.stream_id: len(s.channels) for s in config.streams}
        self._requests: "queue.Queue[Optional[session_pb2.StreamRequest]]" = queue.Queue()
        self._responses: "queue.Queue[Any]" = queue.Queue()
        self._keep = keep_responses
        self._callbacks: Dict[str, List[Callable[[Any], None]]] = {}
        self._any_callbacks: List[Callable[[session_pb2.StreamResponse], None]] = []
        self._lock = threading.Condition()
        self._seq = 0
        self._acked = 0
        self._ending = False
        self._error: Optional[SessionBroken] = None
        self._done = False
        #: The server's SessionEnded, once the session has ended.
        self.ended: Optional[session_pb2.SessionEnded] = None
        for kind, callback in (callbacks or {}).items():
            self.on(kind, callback)  # before the reader starts: no answer is missed
        self._send(config=config)
        self._call = stub.Stream(self._request_iterator())
        try:
            first = next(self._call)
        except grpc.RpcError as e:
            self._close_requests()
            raise SessionBroken(0, self._seq, e.code(), e.details()) from None
        if not first.HasField("started"):
            self._close_requests()
            raise RuntimeError(f"the server's first answer is not SessionStarted: {first}")
        #: The server's SessionStarted: session_id, server_time, whether it records.
        self.started = first.started
        self.session_id = first.started.session_id
        self._reader = threading.Thread(target=self._read, name=f"affectd-session-{self.session_id}", daemon=True)
        self._reader.start()

    # -- sending -------------------------------------------------------------------------

    def _request_iterator(self) -> Iterator[session_pb2.StreamRequest]:
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _close_requests(self) -> None:
        self._requests.put(None)

    def _send(self, **message: Any) -> int:
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._ending or self._done:
                raise RuntimeError("the session has ended; open a new one")
            self._seq += 1
            self._requests.put(session_pb2.StreamRequest(client_seq=self._seq, **message))
            return self._seq

    def frame(self, timestamp: float, image: Any, color: str = "RGB") -> int:
        """A frame captured at `timestamp` (client clock, s): a path, JPEG/PNG bytes, an
        H x W x 3 uint8 array (`color` "RGB" or "BGR") or a PIL image."""
        message = session_pb2.Frame(timestamp=float(timestamp), image=_inputs.image_input(image, color, "image"))
        return self._send(frame=message)

    def chunk(
        self,
        stream_id: str,
        first_timestamp: float,
        samples: Any,
        *,
        timestamps: Optional[Sequence[float]] = None,
        first_sample_index: Optional[int] = None,
        layout: str = "samples",
    ) -> int:
        """Consecutive samples of one stream. `samples` is (samples, channels), one row per
        sample as pylsl's pull_chunk returns them, or with `layout="channels"` (channels,
        samples) as BrainFlow's get_board_data rows. `first_timestamp`: the first sample's
        time (client clock, s); `timestamps`: optional per-sample times (strictly
        increasing); `first_sample_index`: the first sample's index since the stream began
        (exact gap detection)."""
        chunk = _requests.chunk(
            self._channels, stream_id, first_timestamp, samples,
            timestamps=timestamps, first_sample_index=first_sample_index, layout=layout,
        )
        return self._send(chunk=chunk)

    def marker(self, timestamp: float, label: str, duration_s: float = 0.0) -> int:
        """An event (stimulus onset, response...) at `timestamp` (client clock, s)."""
        if not isinstance(label, str):
            raise ValueError(f"label: expected a string, got {type(label).__name__}")
        return self._send(marker=session_pb2.Marker(timestamp=float(timestamp), label=label, duration_s=float(duration_s)))

    def explain(self, **options: Any) -> int:
        """Asks for an explanation of the session's latest moment. Options as
        `Client.explain` (labels, backend, max_tokens, seed, context, face_ids, ...). The
        tokens and the result arrive as "explain" responses carrying this client_seq."""
        options.pop("session_id", None)
        request = _requests.explain(session_id=self.session_id, **options)
        request.ClearField("session_id")
        return self._send(explain=request)

    # -- receiving -----------------------------------------------------------------------

    def on(self, kind: str, callback: Callable[[Any], None]) -> "Session":
        """Calls `callback(message)` for each response of `kind` (see RESPONSE_KINDS): the
        inner message, e.g. a FaceFrameResult for "faces". `kind="*"` gets every
        StreamResponse. Callbacks run on the reader thread, in order. Registered after
        the session opened, a callback misses what was read before; pass
        `callbacks={...}` to `Client.session` to have them from the start."""
        if kind == "*":
            self._any_callbacks.append(callback)
        elif kind in RESPONSE_KINDS:
            self._callbacks.setdefault(kind, []).append(callback)
        else:
            raise ValueError(f"kind: {kind!r} is not one of {RESPONSE_KINDS + ('*',)}")
        return self

    def _read(self) -> None:
        error = None
        try:
            for response in self._call:
                kind = response.WhichOneof("message")
                if kind == "ack":
                    with self._lock:
                        self._acked = max(self._acked, response.ack.client_seq)
                        self._lock.notify_all()
                elif kind == "ended":
                    self.ended = response.ended
                for cb in self._any_callbacks:
                    cb(response)
                for cb in self._callbacks.get(kind or "", ()):
                    cb(getattr(response, kind))
                if self._keep:
                    self._responses.put(response)
                # After SessionEnded the server closes the stream: read on to that close, so
                # the call finishes here and is not left to be cancelled at garbage
                # collection (which can deadlock grpc at interpreter exit).
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED or not self._ending:
                with self._lock:
                    error = SessionBroken(self._acked, self._seq, e.code(), e.details())
        except Exception as e:  # a callback raised: the session cannot go on unseen
            with self._lock:
                error = SessionBroken(self._acked, self._seq, "CLIENT", f"a callback or the client failed: {e!r}")
            self._call.cancel()
        if error is None and self.ended is None:
            with self._lock:
                error = SessionBroken(self._acked, self._seq, "UNAVAILABLE", "the stream closed without SessionEnded")
        with self._lock:
            self._error = error
            self._done = True
            self._lock.notify_all()
        self._close_requests()
        self._responses.put(_Closed(error))

    def __iter__(self) -> Iterator[session_pb2.StreamResponse]:
        """The server's answers (StreamResponse) as they come, until SessionEnded; raises
        SessionBroken if the stream broke. Needs keep_responses=True (the default)."""
        if not self._keep:
            raise RuntimeError("this session was opened with keep_responses=False; use callbacks")
        while True:
            item = self._responses.get()
            if isinstance(item, _Closed):
                self._responses.put(item)  # later iterations end too
                if item.error is not None:
                    raise item.error
                return
            yield item

    def responses(self, timeout: Optional[float] = None) -> List[session_pb2.StreamResponse]:
        """The answers received so far and not yet taken (waiting up to `timeout` s for
        the first one when there is none)."""
        out: List[session_pb2.StreamResponse] = []
        try:
            item = self._responses.get(timeout=timeout) if timeout else self._responses.get_nowait()
            while True:
                if isinstance(item, _Closed):
                    self._responses.put(item)
                    break
                out.append(item)
                item = self._responses.get_nowait()
        except queue.Empty:
            pass
        return out

    # -- acknowledgements ----------------------------------------------------------------

    @property
    def last_acknowledged(self) -> int:
        """The highest client_seq the server has recorded (every one up to it is)."""
        return self._acked

    @property
    def last_sent(self) -> int:
        return self._seq

    def unacknowledged(self) -> List[int]:
        """The client_seqs sent and not yet acknowledged, in order."""
        with self._lock:
            return list(range(self._acked + 1, self._seq + 1))

    def wait_acknowledged(self, timeout: Optional[float] = None) -> bool:
        """Waits until everything sent so far is acknowledged. Returns False on timeout;
        raises SessionBroken if the stream broke first, and RuntimeError for a session that
        is not recorded (the server acknowledges only what it records)."""
        if not self.started.recording:
            raise RuntimeError("this session is not recorded (no_record): the server sends no acknowledgements")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._error is not None:
                raise self._error
            target = self._seq
            while self._acked < target:
                if self._error is not None:
                    raise self._error
                if self._done:
                    return self._acked >= target
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    # -- ending --------------------------------------------------------------------------

    def end(self, timeout: Optional[float] = 60.0) -> session_pb2.SessionEnded:
        """Ends the session: the server finishes the analysis, records the rest, sends the
        last results and SessionEnded, which is returned. Raises SessionBroken if the stream
        broke, TimeoutError if SessionEnded does not come within `timeout` s."""
        with self._lock:
            first = not self._ending and not self._done
            if first:
                self._seq += 1
                self._requests.put(session_pb2.StreamRequest(client_seq=self._seq, end=session_pb2.EndSession()))
                self._ending = True
        self._reader.join(timeout)
        if self._reader.is_alive():
            raise TimeoutError(f"no SessionEnded within {timeout} s (session {self.session_id})")
        if self._error is not None:
            raise self._error
        assert self.ended is not None
        return self.ended

    def cancel(self) -> None:
        """Drops the stream at once, without waiting (the server marks the recording
        INTERRUPTED; what was acknowledged stays recorded)."""
        with self._lock:
            self._ending = True
        self._call.cancel()
        self._close_requests()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and exc_type is not SessionBroken:
            # The experiment failed: still end the session so that its recording closes
            # cleanly; do not hide the original error behind one from ending.
            try:
                self.end()
            except Exception:
                pass
            return
        if exc_type is None:
            self.end()

    # -- results as tables ----------------------------------------------------------------

    @staticmethod
    def to_dataframes(responses: Sequence[session_pb2.StreamResponse], source: str = "") -> Dict[str, Any]:
        """Collected responses as {"faces", "features", "fused", "events"} DataFrames
        ("events": the ended expression episodes)."""
        faces = [r.faces for r in responses if r.HasField("faces")]
        events = [r.expression_event for r in responses if r.HasField("expression_event")]
        windows = [r.features for r in responses if r.HasField("features")]
        fused = [r.fused for r in responses if r.HasField("fused")]
        return {
            "faces": tables.faces_dataframe(faces, source),
            "features": tables.features_dataframe(windows, source),
            "fused": tables.fused_dataframe(fused, source),
            "events": tables.events_dataframe(events, source),
        }
