"""The blocking client: one `Client` per server, every affect.v1 RPC as a method with Python
values in and typed results out."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from . import _channel, _inputs, _requests
from .proto import (
    affect_pb2,
    affect_pb2_grpc,
    fusion_pb2,
    recordings_pb2,
    recordings_pb2_grpc,
    vision_pb2,
)
from .results import Explanation, FrameAnalysis, SignalAnalysis
from .session import Session, stream_config

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: The server's default server.max_message_bytes.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

EXPORT_FORMATS = {
    "xdf": recordings_pb2.EXPORT_FORMAT_XDF,
    "csv": recordings_pb2.EXPORT_FORMAT_CSV,
}


def channel_options(max_message_bytes: int) -> List[Tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def export_format(fmt: Union[str, int]) -> int:
    if isinstance(fmt, str):
        try:
            return EXPORT_FORMATS[fmt.lower()]
        except KeyError:
            raise ValueError(f"format: {fmt!r} is not one of {sorted(EXPORT_FORMATS)}") from None
    return int(fmt)


def export_target(path: Union[str, "os.PathLike[str]", None], name: str) -> str:
    """Where an export goes: `path` itself, or the server's file name in the folder `path`
    (default: the current folder)."""
    if path is None:
        return os.path.abspath(name)
    if os.path.isdir(path):
        return os.path.join(os.fspath(path), name)
    return os.fspath(path)


def best_offset(probes: Sequence[Tuple[float, affect_pb2.ClockSyncResponse, float]]) -> Tuple[float, float]:
    """NTP's estimate from the probe with the smallest round trip: (offset_s, rtt_s), where
    offset = server clock - client clock."""
    best: Optional[Tuple[float, float]] = None
    for t0, reply, t3 in probes:
        rtt = (t3 - t0) - (reply.server_send_time - reply.server_receive_time)
        offset = ((reply.server_receive_time - t0) + (reply.server_send_time - t3)) / 2
        if best is None or rtt < best[1]:
            best = (offset, rtt)
    assert best is not None
    return best


class Recordings:
    """The recorded sessions (affect.v1 Recordings): `client.recordings`."""

    def __init__(self, stub: recordings_pb2_grpc.RecordingsStub, timeout: float):
        self._stub = stub
        self._timeout = timeout

    def list(self, page_size: int = 0) -> List[recordings_pb2.SessionSummary]:
        """Every recorded session, newest first (all pages)."""
        out: List[recordings_pb2.SessionSummary] = []
        token = ""
        while True:
            page = self._stub.ListSessions(
                recordings_pb2.ListSessionsRequest(page_size=page_size, page_token=token), timeout=self._timeout
            )
            out.extend(page.sessions)
            token = page.next_page_token
            if not token:
                return out

    def get(self, session_id: str) -> recordings_pb2.SessionSummary:
        """One session's summary (NOT_FOUND: grpc.RpcError)."""
        return self._stub.GetSession(recordings_pb2.GetSessionRequest(session_id=session_id), timeout=self._timeout).session

    def export(
        self, session_id: str, path: Union[str, "os.PathLike[str]", None] = None, format: Union[str, int] = "xdf"
    ) -> str:
        """Writes the session's export ("xdf" or "csv", a zip) to `path` (a file, or a
        folder that gets the server's file name; default: the current folder) and returns
        the file's path. The file appears whole or not at all."""
        stream = self._stub.ExportSession(
            recordings_pb2.ExportSessionRequest(session_id=session_id, format=export_format(format)),
            timeout=max(self._timeout, 600.0),
        )
        target: Optional[str] = None
        tmp: Optional[str] = None
        f = None
        try:
            for piece in stream:
                if f is None:
                    target = export_target(path, piece.file_name or f"{session_id}.{str(format).lower()}")
                    tmp = target + ".partial"
                    f = open(tmp, "wb")
                f.write(piece.data)
            if f is None:
                raise RuntimeError(f"the export of {session_id} came back empty")
            f.close()
            assert tmp is not None and target is not None
            os.replace(tmp, target)
            return target
        except BaseException:
            if f is not None:
                f.close()
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
            raise

    def export_bytes(self, session_id: str, format: Union[str, int] = "xdf") -> bytes:
        """The export in memory."""
        stream = self._stub.ExportSession(
            recordings_pb2.ExportSessionRequest(session_id=session_id, format=export_format(format)),
            timeout=max(self._timeout, 600.0),
        )
        return b"".join(piece.data for piece in stream)

    def delete(self, session_id: str) -> bool:
        """Deletes an ended session's recording; False when there was none. A live session
        is refused (FAILED_PRECONDITION)."""
        reply = self._stub.DeleteSession(recordings_pb2.DeleteSessionRequest(session_id=session_id), timeout=self._timeout)
        return reply.deleted


class Client:
    """A connection to one affectd server.

        with affectd.Client("127.0.0.1:50051") as client:
            faces = client.analyze_frame("photo.jpg").to_dataframe()

    `timeout` (s) applies to each unary call; `max_message_bytes` must not exceed the
    server's server.max_message_bytes (16 MiB by default).

    A server with `[[auth.tokens]]` needs `token` (default: $AFFECTD_TOKEN). A server with
    TLS needs `tls=True`, or `root_certificates` (PEM bytes or a file) when its certificate
    is not signed by a public CA; one that requires mutual TLS also `certificate_chain` and
    `private_key`."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float = 60.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel: Optional[grpc.Channel] = None,
        token: Optional[str] = None,
        tls: bool = False,
        root_certificates: _channel.PemSource = None,
        certificate_chain: _channel.PemSource = None,
        private_key: _channel.PemSource = None,
    ):
        self.address = address
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self.channel = channel or _channel.open_channel(
            address,
            channel_options(max_message_bytes),
            _channel.token_from(token),
            _channel.credentials(tls, root_certificates, certificate_chain, private_key),
        )
        self.affect = affect_pb2_grpc.AffectStub(self.channel)
        #: Recorded sessions: list, get, export, delete.
        self.recordings = Recordings(recordings_pb2_grpc.RecordingsStub(self.channel), timeout)

    # -- information and time ----------------------------------------------------------

    def server_info(self) -> affect_pb2.GetServerInfoResponse:
        """Version, models with their sha256, capabilities, explanation backends."""
        return self.affect.GetServerInfo(affect_pb2.GetServerInfoRequest(), timeout=self.timeout)

    def clock_offset(
        self, probes: int = 8, clock: Callable[[], float] = time.time, session_id: Optional[str] = None
    ) -> Tuple[float, float]:
        """NTP-style estimate of (server clock - client clock) in seconds from the probe with
        the smallest round trip: returns (offset_s, rtt_s).

        `clock` is the clock your timestamps use: time.time matches the server's Unix-epoch
        clock; pass pylsl.local_clock for LSL time. With `session_id`, the estimate is also
        stored with that live session's recording (and its XDF export's clock offsets)."""
        if probes < 1:
            raise ValueError(f"probes: expected at least 1, got {probes}")
        samples = []
        for _ in range(probes):
            t0 = clock()
            reply = self.affect.ClockSync(affect_pb2.ClockSyncRequest(client_send_time=t0), timeout=self.timeout)
            samples.append((t0, reply, clock()))
        offset, rtt = best_offset(samples)
        if session_id:
            self.affect.ClockSync(
                affect_pb2.ClockSyncRequest(
                    client_send_time=clock(), session_id=session_id, measured_offset_s=offset, measured_rtt_s=rtt
                ),
                timeout=self.timeout,
            )
        return offset, rtt

    # -- one-shot analyses --------------------------------------------------------------

    def analyze_frame(
        self, image: Any, *, color: str = "RGB", options: Union[None, Mapping[str, Any], vision_pb2.FrameOptions] = None
    ) -> FrameAnalysis:
        """The faces of one image: a path, JPEG/PNG bytes, an H x W x 3 uint8 numpy array
        (`color` "RGB", or "BGR" as OpenCV gives) or a PIL image. `options`: FrameOptions
        fields (e.g. {"marked_image": True})."""
        request = vision_pb2.AnalyzeFrameRequest(image=_inputs.image_input(image, color))
        o = _requests.frame_options_message(options)
        if o is not None:
            request.options.CopyFrom(o)
        return FrameAnalysis(self.affect.AnalyzeFrame(request, timeout=self.timeout))

    def analyze_signals(
        self,
        arrays: Any,
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
    ) -> SignalAnalysis:
        """Features of recorded arrays. `arrays`: {stream_id: (channels, samples) array},
        channel-major as BrainFlow's get_board_data rows (a 1-D array is one channel), or a
        sequence of arrays (ids "s0", "s1", ...). `rates` (Hz), `kinds` ("eeg", "eda", "ecg",
        "ppg", "respiration", "other"), `labels`, `units`, `first_timestamps` (s): one per
        stream, as a mapping by id, a sequence, or one value for all. Window settings of 0
        take the server's defaults."""
        request = _requests.analyze_signals(
            arrays, rates, kinds, labels=labels, units=units, first_timestamps=first_timestamps,
            window_s=window_s, hop_s=hop_s, line_frequency_hz=line_frequency_hz,
            baseline_s=baseline_s, max_message_bytes=self.max_message_bytes,
        )
        reply = self.affect.AnalyzeSignals(request, timeout=self.timeout)
        return SignalAnalysis(list(reply.windows), list(reply.warnings))

    def explain(self, image: Any = None, *, session_id: Optional[str] = None, **options: Any) -> Explanation:
        """An explanation of an image or of a live session's latest moment (give one).
        Iterate the result for the tokens as they are generated; `.result` (ExplainResult)
        and `.judgements` are there once it is read (`.wait()` reads it all). Options:
        labels, backend, max_tokens, temperature, top_p, seed, include_image, context,
        face_ids, color (of an array image), frame_options."""
        request = _requests.explain(image, session_id=session_id, **options)
        call = self.affect.Explain(request, timeout=max(self.timeout, 900.0))
        return Explanation(iter(call), _cancel=call.cancel)

    def calibrate(self, session_id: str) -> fusion_pb2.CalibrateResponse:
        """Fits the live session's personal fusion classifier from its labelled markers and
        returns its cross-validated accuracy with the chance level."""
        return self.affect.Calibrate(fusion_pb2.CalibrateRequest(session_id=session_id), timeout=self.timeout)

    # -- sessions ------------------------------------------------------------------------

    def session(
        self,
        participant: str = "",
        streams: Sequence[Any] = (),
        *,
        keep_responses: bool = True,
        callbacks: Optional[Mapping[str, Callable[[Any], None]]] = None,
        **config: Any,
    ) -> Session:
        """Opens a live session. `streams`: affectd.stream(...) per signal stream; other
        keywords: session_id, metadata, no_record, frame_options, signal_config,
        detect_every_n_frames (SessionConfig fields). `callbacks`: {kind: fn} registered
        before the first answer is read (see Session.on); `keep_responses=False` when only
        callbacks take the answers (nothing is queued for iteration)."""
        return Session(
            self.affect,
            stream_config(participant, streams, **config),
            keep_responses=keep_responses,
            callbacks=dict(callbacks or {}),
        )

    def sessions(self) -> List[recordings_pb2.SessionSummary]:
        """Every recorded session (`recordings.list()`)."""
        return self.recordings.list()

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

