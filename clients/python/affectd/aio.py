"""The same client over grpc.aio, for experiment loops that are asyncio:

    async with affectd.aio.Client("127.0.0.1:50051") as client:
        analysis = await client.analyze_frame("photo.jpg")
        async with await client.session(participant="p01", streams=[eeg]) as session:
            await session.chunk("eeg", t0, samples)
            async for response in session: ...

Methods, arguments and results are those of `affectd.Client` and `affectd.Session`; the
calls are awaited and the iterators are async."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import grpc.aio

from . import _channel, _inputs, _requests, tables
from .client import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_MESSAGE_BYTES,
    best_offset,
    channel_options,
    export_format,
    export_target,
)
from .proto import (
    affect_pb2,
    affect_pb2_grpc,
    explain_pb2,
    fusion_pb2,
    recordings_pb2,
    recordings_pb2_grpc,
    session_pb2,
    signals_pb2,
    vision_pb2,
)
from .results import FrameAnalysis, SignalAnalysis
from .session import RESPONSE_KINDS, SessionBroken, stream_config


class Explanation:
    """An explanation being generated: `async for token in explanation`; then `.result`."""

    def __init__(self, call: Any):
        self._call = call
        self.result: Optional[explain_pb2.ExplainResult] = None
        self.tokens: List[str] = []

    async def __aiter__(self) -> AsyncIterator[str]:
        async for event in self._call:
            if event.HasField("result"):
                self.result = event.result
            else:
                self.tokens.append(event.token)
                yield event.token

    async def wait(self) -> explain_pb2.ExplainResult:
        async for _ in self:
            pass
        if self.result is None:
            raise RuntimeError("the explanation ended without a result")
        return self.result

    async def judgements(self) -> List[explain_pb2.Judgement]:
        return list((await self.wait()).judgements)

    def cancel(self) -> None:
        self._call.cancel()


class Recordings:
    def __init__(self, stub: recordings_pb2_grpc.RecordingsStub, timeout: float):
        self._stub = stub
        self._timeout = timeout

    async def list(self, page_size: int = 0) -> List[recordings_pb2.SessionSummary]:
        out: List[recordings_pb2.SessionSummary] = []
        token = ""
        while True:
            page = await self._stub.ListSessions(
                recordings_pb2.ListSessionsRequest(page_size=page_size, page_token=token), timeout=self._timeout
            )
            out.extend(page.sessions)
            token = page.next_page_token
            if not token:
                return out

    async def get(self, session_id: str) -> recordings_pb2.SessionSummary:
        reply = await self._stub.GetSession(recordings_pb2.GetSessionRequest(session_id=session_id), timeout=self._timeout)
        return reply.session

    async def export_bytes(self, session_id: str, format: Union[str, int] = "xdf") -> Tuple[str, bytes]:
        """(the server's file name, the file's bytes)."""
        name, parts = "", []
        call = self._stub.ExportSession(
            recordings_pb2.ExportSessionRequest(session_id=session_id, format=export_format(format)),
            timeout=max(self._timeout, 600.0),
        )
        async for piece in call:
            name = name or piece.file_name
            parts.append(piece.data)
        return name, b"".join(parts)

    async def export(
        self, session_id: str, path: Union[str, "os.PathLike[str]", None] = None, format: Union[str, int] = "xdf"
    ) -> str:
        """As `Client.recordings.export`; the file is written once complete."""
        name, data = await self.export_bytes(session_id, format)
        target = export_target(path, name or f"{session_id}.{str(format).lower()}")
        tmp = target + ".partial"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return target

    async def delete(self, session_id: str) -> bool:
        reply = await self._stub.DeleteSession(recordings_pb2.DeleteSessionRequest(session_id=session_id), timeout=self._timeout)
        return reply.deleted


class Session:
    """A live session over grpc.aio (see `affectd.Session`). Open with
    `await client.session(...)`; `async with` ends it. Sends are coroutines that only queue
    (they never wait on the server's answers); a reader task takes the answers."""

    def __init__(self, stub: affect_pb2_grpc.AffectStub, config: session_pb2.SessionConfig, keep_responses: bool):
        self._stub = stub
        self._config = config
        self._channels = {s.stream_id: len(s.channels) for s in config.streams}
        self._keep = keep_responses
        self._requests: "asyncio.Queue[Optional[session_pb2.StreamRequest]]" = asyncio.Queue()
        self._responses: "asyncio.Queue[Any]" = asyncio.Queue()
        self._callbacks: Dict[str, List[Callable[[Any], Any]]] = {}
        self._seq = 0
        self._acked = 0
        self._acked_changed = asyncio.Condition()
        self._ending = False
        self._done = False
        self._error: Optional[SessionBroken] = None
        self.ended: Optional[session_pb2.SessionEnded] = None
        self._reader: Optional["asyncio.Task[None]"] = None

    async def _start(self, start_timeout: float) -> "Session":
        self._put(config=self._config)
        self._call = self._stub.Stream(self._request_iterator())
        try:
            first = await asyncio.wait_for(self._call.read(), start_timeout)
        except grpc.RpcError as e:
            raise SessionBroken(0, self._seq, e.code(), e.details()) from None
        if first is grpc.aio.EOF or not first.HasField("started"):
            raise RuntimeError(f"the server's first answer is not SessionStarted: {first}")
        self.started = first.started
        self.session_id = first.started.session_id
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _request_iterator(self) -> AsyncIterator[session_pb2.StreamRequest]:
        while True:
            item = await self._requests.get()
            if item is None:
                return
            yield item

    def _put(self, **message: Any) -> int:
        if self._error is not None:
            raise self._error
        if self._ending or self._done:
            raise RuntimeError("the session has ended; open a new one")
        self._seq += 1
        self._requests.put_nowait(session_pb2.StreamRequest(client_seq=self._seq, **message))
        return self._seq

    async def frame(self, timestamp: float, image: Any, color: str = "RGB") -> int:
        return self._put(frame=session_pb2.Frame(timestamp=float(timestamp), image=_inputs.image_input(image, color, "image")))

    async def chunk(self, stream_id: str, first_timestamp: float, samples: Any, **options: Any) -> int:
        """As `affectd.Session.chunk` (timestamps, first_sample_index, layout)."""
        return self._put(chunk=_requests.chunk(self._channels, stream_id, first_timestamp, samples, **options))

    async def marker(self, timestamp: float, label: str, duration_s: float = 0.0) -> int:
        if not isinstance(label, str):
            raise ValueError(f"label: expected a string, got {type(label).__name__}")
        return self._put(marker=session_pb2.Marker(timestamp=float(timestamp), label=label, duration_s=float(duration_s)))

    async def explain(self, **options: Any) -> int:
        options.pop("session_id", None)
        request = _requests.explain(session_id=self.session_id, **options)
        request.ClearField("session_id")
        return self._put(explain=request)

    def on(self, kind: str, callback: Callable[[Any], Any]) -> "Session":
        """As `affectd.Session.on`; a callback may be a coroutine function."""
        if kind != "*" and kind not in RESPONSE_KINDS:
            raise ValueError(f"kind: {kind!r} is not one of {RESPONSE_KINDS + ('*',)}")
        self._callbacks.setdefault(kind, []).append(callback)
        return self

    async def _read(self) -> None:
        error = None
        try:
            while True:  # read(), not `async for`: grpc.aio forbids mixing them on one call
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    break
                kind = response.WhichOneof("message")
                if kind == "ack":
                    async with self._acked_changed:
                        self._acked = max(self._acked, response.ack.client_seq)
                        self._acked_changed.notify_all()
                elif kind == "ended":
                    self.ended = response.ended
                for cb in self._callbacks.get("*", []):
                    r = cb(response)
                    if asyncio.iscoroutine(r):
                        await r
                for cb in self._callbacks.get(kind or "", []):
                    r = cb(getattr(response, kind))
                    if asyncio.iscoroutine(r):
                        await r
                if self._keep:
                    self._responses.put_nowait(response)
                if kind == "ended":
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED or not self._ending:
                error = SessionBroken(self._acked, self._seq, e.code(), e.details())
        except Exception as e:
            error = SessionBroken(self._acked, self._seq, "CLIENT", f"a callback or the client failed: {e!r}")
            self._call.cancel()
        if error is None and self.ended is None and not self._ending:
            error = SessionBroken(self._acked, self._seq, "UNAVAILABLE", "the stream closed without SessionEnded")
        self._error = error
        self._done = True
        self._requests.put_nowait(None)
        async with self._acked_changed:
            self._acked_changed.notify_all()
        self._responses.put_nowait(error if error is not None else StopAsyncIteration())

    async def __aiter__(self) -> AsyncIterator[session_pb2.StreamResponse]:
        if not self._keep:
            raise RuntimeError("this session was opened with keep_responses=False; use callbacks")
        while True:
            item = await self._responses.get()
            if isinstance(item, (SessionBroken, StopAsyncIteration)):
                self._responses.put_nowait(item)
                if isinstance(item, SessionBroken):
                    raise item
                return
            yield item

    @property
    def last_acknowledged(self) -> int:
        return self._acked

    @property
    def last_sent(self) -> int:
        return self._seq

    def unacknowledged(self) -> List[int]:
        return list(range(self._acked + 1, self._seq + 1))

    async def wait_acknowledged(self, timeout: Optional[float] = None) -> bool:
        if not self.started.recording:
            raise RuntimeError("this session is not recorded (no_record): the server sends no acknowledgements")
        if self._error is not None:
            raise self._error
        target = self._seq

        async def reached() -> None:
            async with self._acked_changed:
                await self._acked_changed.wait_for(lambda: self._acked >= target or self._done)

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            return False
        if self._acked < target and self._error is not None:
            raise self._error
        return self._acked >= target

    async def end(self, timeout: Optional[float] = 60.0) -> session_pb2.SessionEnded:
        if not self._ending and not self._done:
            self._seq += 1
            self._requests.put_nowait(session_pb2.StreamRequest(client_seq=self._seq, end=session_pb2.EndSession()))
            self._ending = True
        assert self._reader is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no SessionEnded within {timeout} s (session {self.session_id})") from None
        if self._error is not None:
            raise self._error
        assert self.ended is not None
        return self.ended

    def cancel(self) -> None:
        self._ending = True
        self._call.cancel()

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.end()
        elif exc_type is not SessionBroken:
            try:
                await self.end()
            except Exception:
                pass


class Client:
    """`affectd.Client` over grpc.aio: the same methods, awaited."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float = 60.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        token: Optional[str] = None,
        tls: bool = False,
        root_certificates: _channel.PemSource = None,
        certificate_chain: _channel.PemSource = None,
        private_key: _channel.PemSource = None,
    ):
        self.address = address
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self.channel = _channel.open_aio_channel(
            address,
            channel_options(max_message_bytes),
            _channel.token_from(token),
            _channel.credentials(tls, root_certificates, certificate_chain, private_key),
        )
        self.affect = affect_pb2_grpc.AffectStub(self.channel)
        self.recordings = Recordings(recordings_pb2_grpc.RecordingsStub(self.channel), timeout)

    async def server_info(self) -> affect_pb2.GetServerInfoResponse:
        return await self.affect.GetServerInfo(affect_pb2.GetServerInfoRequest(), timeout=self.timeout)

    async def clock_offset(
        self, probes: int = 8, clock: Callable[[], float] = time.time, session_id: Optional[str] = None
    ) -> Tuple[float, float]:
        if probes < 1:
            raise ValueError(f"probes: expected at least 1, got {probes}")
        samples = []
        for _ in range(probes):
            t0 = clock()
            reply = await self.affect.ClockSync(affect_pb2.ClockSyncRequest(client_send_time=t0), timeout=self.timeout)
            samples.append((t0, reply, clock()))
        offset, rtt = best_offset(samples)
        if session_id:
            await self.affect.ClockSync(
                affect_pb2.ClockSyncRequest(
                    client_send_time=clock(), session_id=session_id, measured_offset_s=offset, measured_rtt_s=rtt
                ),
                timeout=self.timeout,
            )
        return offset, rtt

    async def analyze_frame(
        self, image: Any, *, color: str = "RGB", options: Union[None, Mapping[str, Any], vision_pb2.FrameOptions] = None
    ) -> FrameAnalysis:
        request = vision_pb2.AnalyzeFrameRequest(image=_inputs.image_input(image, color))
        o = _requests.frame_options_message(options)
        if o is not None:
            request.options.CopyFrom(o)
        return FrameAnalysis(await self.affect.AnalyzeFrame(request, timeout=self.timeout))

    async def analyze_signals(self, arrays: Any, rates: Any, kinds: Any, **options: Any) -> SignalAnalysis:
        request = _requests.analyze_signals(arrays, rates, kinds, max_message_bytes=self.max_message_bytes, **options)
        reply = await self.affect.AnalyzeSignals(request, timeout=self.timeout)
        return SignalAnalysis(list(reply.windows), list(reply.warnings))

    def explain(self, image: Any = None, *, session_id: Optional[str] = None, **options: Any) -> Explanation:
        request = _requests.explain(image, session_id=session_id, **options)
        return Explanation(self.affect.Explain(request, timeout=max(self.timeout, 900.0)))

    async def calibrate(self, session_id: str) -> fusion_pb2.CalibrateResponse:
        return await self.affect.Calibrate(fusion_pb2.CalibrateRequest(session_id=session_id), timeout=self.timeout)

    async def session(
        self,
        participant: str = "",
        streams: Sequence[Any] = (),
        *,
        keep_responses: bool = True,
        callbacks: Optional[Mapping[str, Callable[[Any], Any]]] = None,
        **config: Any,
    ) -> Session:
        session = Session(self.affect, stream_config(participant, streams, **config), keep_responses)
        for kind, callback in (callbacks or {}).items():
            session.on(kind, callback)
        return await session._start(30.0)

    async def sessions(self) -> List[recordings_pb2.SessionSummary]:
        return await self.recordings.list()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


__all__ = ["Client", "Session", "Explanation", "Recordings", "SessionBroken", "tables", "signals_pb2"]
