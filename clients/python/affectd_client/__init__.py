"""Python client for affectd (gRPC package affect.v1).

    from affectd_client import Client
    client = Client("127.0.0.1:50051")
    info = client.server_info()
    offset, rtt = client.clock_offset()

The generated stubs live in `affect.v1` (regenerate with clients/python/generate.sh).
"""

from __future__ import annotations

import time
from typing import Callable

import grpc

from affect.v1 import affect_pb2, affect_pb2_grpc, recordings_pb2_grpc

__all__ = ["Client", "affect_pb2"]


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

    def server_info(self, timeout: float = 10.0) -> affect_pb2.ServerInfo:
        return self.affect.GetServerInfo(affect_pb2.GetServerInfoRequest(), timeout=timeout)

    def clock_offset(self, probes: int = 8, clock: Callable[[], float] = time.time) -> tuple[float, float]:
        """NTP-style estimate of (server clock - client clock) in seconds, from the probe
        with the smallest round trip. Returns (offset_s, rtt_s).

        `clock` is the client clock your timestamps use: time.time() matches the server's
        Unix-epoch clock; pass pylsl.local_clock to sync an LSL clock.
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
        return best

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
