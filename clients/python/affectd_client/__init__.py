"""Python client for affectd (gRPC package affect.v1).

    from affectd_client import Client
    client = Client("127.0.0.1:50051")
    info = client.server_info()
    offset, rtt = client.clock_offset()

A live session (frames, signal chunks and markers up; results, acknowledgements and
warnings down):

    session = client.session(participant="p01", streams=[eeg_info])
    reader = threading.Thread(target=lambda: [handle(r) for r in session.responses()])
    reader.start()                                     # answers arrive while you send
    session.chunk("eeg", first_timestamp, samples)     # samples: [n_samples][n_channels]
    session.frame(timestamp, jpeg_bytes)
    session.marker(timestamp, "stimulus onset")
    session.end()                                      # the reader stops at SessionEnded
    reader.join()

See examples/live_session.py.

The generated stubs live in `affect.v1` (regenerate with clients/python/generate.sh).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, Sequence

import grpc

from affect.v1 import (
    affect_pb2,
    affect_pb2_grpc,
    explain_pb2,
    recordings_pb2_grpc,
    session_pb2,
    signals_pb2,
    vision_pb2,
)

__all__ = ["Client", "Session", "affect_pb2", "session_pb2", "signals_pb2"]


class Client:
    """A connection to one affectd server."""

    def __init__(self, address: str = "127.0.0.1:50051", max_message_bytes: int = 16 * 1024 * 1024):
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self.channel = grpc.insecure_channel(address, options=options)
        self.affect = affect_pb2_grpc.AffectStub(self.channel)
        self.recordings = recordings_pb2_grpc.RecordingsStub(self.channel)

    def server_info(self, timeout: float = 10.0) -> affect_pb2.GetServerInfoResponse:
        return self.affect.GetServerInfo(affect_pb2.GetServerInfoRequest(), timeout=timeout)

    def clock_offset(
        self,
        probes: int = 8,
        clock: Callable[[], float] = time.time,
        session_id: str | None = None,
    ) -> tuple[float, float]:
        """NTP-style estimate of (server clock - client clock) in seconds, from the probe
        with the smallest round trip. Returns (offset_s, rtt_s).

        `clock` is the client clock your timestamps use: time.time() matches the server's
        Unix-epoch clock; pass pylsl.local_clock to sync an LSL clock. With `session_id`,
        the estimate is also stored with that live session's recording.
        """
        best = None
        for _ in range(probes):
            t0 = clock()
            reply = self.affect.ClockSync(affect_pb2.ClockSyncRequest(client_send_time=t0), timeout=5.0)
            t3 = clock()
            rtt = (t3 - t0) - (reply.server_send_time - reply.server_receive_time)
            offset = ((reply.server_receive_time - t0) + (reply.server_send_time - t3)) / 2
            if best is None or rtt < best[1]:
                best = (offset, rtt)
        if session_id:
            self.affect.ClockSync(
                affect_pb2.ClockSyncRequest(
                    client_send_time=clock(),
                    session_id=session_id,
                    measured_offset_s=best[0],
                    measured_rtt_s=best[1],
                ),
                timeout=5.0,
            )
        return best

    def session(self, **config) -> "Session":
        """Opens a live session; keyword arguments are SessionConfig fields."""
        return Session(self, session_pb2.SessionConfig(**config))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Session:
    """One live session (Affect.Stream). Sending never blocks on the server's answers;
    read them with `responses()`, from this thread or another. Every send returns the
    message's client_seq, which acknowledgements, face results and warnings refer to."""

    def __init__(self, client: Client, config: session_pb2.SessionConfig):
        self._requests: queue.Queue = queue.Queue()
        self._seq = 0
        self._lock = threading.Lock()
        self._closed = False
        self._send(config=config)
        self._stream = client.affect.Stream(self._request_iterator())
        first = next(self._stream)
        if not first.HasField("started"):
            raise RuntimeError(f"the server's first answer is not SessionStarted: {first}")
        self.started = first.started
        self.session_id = first.started.session_id

    def _request_iterator(self) -> Iterator[session_pb2.StreamRequest]:
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _send(self, **message) -> int:
        with self._lock:
            if self._closed:
                raise RuntimeError("the session has ended")
            self._seq += 1
            self._requests.put(session_pb2.StreamRequest(client_seq=self._seq, **message))
            return self._seq

    def frame(self, timestamp: float, image: bytes) -> int:
        """A JPEG/PNG frame captured at `timestamp` (client clock, s)."""
        return self._send(
            frame=session_pb2.Frame(timestamp=timestamp, image=vision_pb2.ImageInput(encoded=image))
        )

    def chunk(self, stream_id: str, first_timestamp: float, samples: Sequence[Sequence[float]]) -> int:
        """Consecutive samples of one stream, one row per sample (as pylsl's pull_chunk
        returns them); `first_timestamp` is the first row's time (client clock, s)."""
        flat = [float(v) for row in samples for v in row]
        return self._send(
            chunk=signals_pb2.SignalChunk(stream_id=stream_id, first_timestamp=first_timestamp, samples=flat)
        )

    def marker(self, timestamp: float, label: str, duration_s: float = 0.0) -> int:
        return self._send(marker=session_pb2.Marker(timestamp=timestamp, label=label, duration_s=duration_s))

    def explain(self, **fields) -> int:
        """Asks for an explanation of the session's latest moment; keyword arguments are
        ExplainRequest fields. The answer arrives among the responses with this client_seq."""
        return self._send(explain=explain_pb2.ExplainRequest(**fields))

    def end(self) -> None:
        """Ends the session; the server then sends the last results and SessionEnded."""
        if not self._closed:
            self._send(end=session_pb2.EndSession())
            with self._lock:
                self._closed = True
                self._requests.put(None)

    def responses(self) -> Iterator[session_pb2.StreamResponse]:
        """The server's answers, until SessionEnded (or an error: grpc.RpcError)."""
        for response in self._stream:
            yield response
            if response.HasField("ended"):
                return

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.end()
