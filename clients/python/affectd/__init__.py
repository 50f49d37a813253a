"""Python client for affectd, the affective-computing server (gRPC package affect.v1).

    import affectd

    with affectd.Client("127.0.0.1:50051") as client:
        faces = client.analyze_frame("photo.jpg").to_dataframe()      # OpenFace 2 columns
        eeg = client.analyze_signals({"eeg": data}, rates=256, kinds="eeg")
        for token in (explanation := client.explain("photo.jpg")):
            print(token, end="")
        print(explanation.judgements)

        eeg_stream = affectd.stream("eeg", "eeg", 256, labels=["Fp1", "Fp2"], units="uV")
        with client.session(participant="p01", streams=[eeg_stream]) as session:
            session.on("faces", print)
            session.chunk("eeg", t0, samples)     # (n_samples, 2), as pylsl's pull_chunk
            session.marker(t0, "stimulus onset")
            session.wait_acknowledged(5.0)

`affectd.aio` has the same API over grpc.aio; `affectd-lsl` bridges Lab Streaming Layer
both ways (pip install 'affectd[lsl]'). The generated messages and stubs are in
`affectd.proto` (regenerate with clients/python/generate.sh).
"""

from .client import Client, Recordings
from .results import Explanation, FrameAnalysis, SignalAnalysis
from .session import RESPONSE_KINDS, Session, SessionBroken, stream
from . import tables

__version__ = "0.2.0"

__all__ = [
    "Client",
    "Recordings",
    "Session",
    "SessionBroken",
    "Explanation",
    "FrameAnalysis",
    "SignalAnalysis",
    "RESPONSE_KINDS",
    "stream",
    "tables",
]
