#!/usr/bin/env python3
"""Seeds for the session_protocol fuzz target: a few well-formed sessions (config, frames,
chunks, markers, explain, end), each message as a 2-byte little-endian length and its
encoded StreamRequest. Run from the repository root with the dev venv:

    PYTHONPATH=clients/python .venv/bin/python fuzz/seeds/make_session_seeds.py
"""

import io
import pathlib
import struct

from PIL import Image

from affectd.proto import explain_pb2, session_pb2, signals_pb2, vision_pb2

OUT = pathlib.Path(__file__).resolve().parent / "session_protocol"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 150)).save(buffer, "PNG")
    return buffer.getvalue()


def write(name, messages):
    data = b"".join(struct.pack("<H", len(m)) + m for m in (m.SerializeToString() for m in messages))
    (OUT / name).write_bytes(data)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    R = session_pb2.StreamRequest
    eeg = signals_pb2.StreamInfo(
        stream_id="eeg", kind=signals_pb2.SIGNAL_KIND_EEG, nominal_rate_hz=64.0,
        channels=[signals_pb2.ChannelInfo(label="F3", unit="uV"), signals_pb2.ChannelInfo(label="F4", unit="uV")],
    )
    config = session_pb2.SessionConfig(participant="p", streams=[eeg], signal_config=signals_pb2.SignalConfig(window_s=1.0, hop_s=0.5))
    chunk = signals_pb2.SignalChunk(stream_id="eeg", first_timestamp=0.0, samples=[float(i % 7) for i in range(128)])
    frame = session_pb2.Frame(timestamp=0.5, image=vision_pb2.ImageInput(encoded=png()))
    marker = session_pb2.Marker(timestamp=0.7, label="onset", duration_s=1.0)
    write("full", [
        R(client_seq=1, config=config), R(client_seq=2, chunk=chunk), R(client_seq=3, frame=frame),
        R(client_seq=4, marker=marker), R(client_seq=5, end=session_pb2.EndSession()),
    ])
    write("unrecorded", [R(client_seq=1, config=session_pb2.SessionConfig(no_record=True)), R(client_seq=2, marker=marker)])
    write("gap", [
        R(client_seq=1, config=config),
        R(client_seq=2, chunk=signals_pb2.SignalChunk(stream_id="eeg", first_sample_index=0, samples=[1.0, 2.0])),
        R(client_seq=3, chunk=signals_pb2.SignalChunk(stream_id="eeg", first_sample_index=1000, samples=[1.0, 2.0])),
    ])
    write("explain", [R(client_seq=1, config=config), R(client_seq=2, frame=frame), R(client_seq=3, explain=explain_pb2.ExplainRequest(max_tokens=4))])


if __name__ == "__main__":
    main()
