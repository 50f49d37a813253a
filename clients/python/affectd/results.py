"""What the client returns: the affect.v1 messages, wrapped where a helper makes them easier
to use (`to_dataframe()`, the explanation's tokens and result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional

from . import tables
from .proto import explain_pb2, signals_pb2, vision_pb2


@dataclass
class FrameAnalysis:
    """The faces of one image (`Client.analyze_frame`). `message` is the
    AnalyzeFrameResponse; `faces` its faces (affect.v1 Face messages)."""

    message: vision_pb2.AnalyzeFrameResponse

    @property
    def faces(self) -> List[vision_pb2.Face]:
        return list(self.message.faces)

    def to_dataframe(self, source: str = ""):
        """One row per face, OpenFace 2 columns (see `affectd.tables`)."""
        return tables.faces_dataframe([self.message], source)


@dataclass
class SignalAnalysis:
    """Feature windows of arrays (`Client.analyze_signals`), and what went wrong."""

    windows: List[signals_pb2.FeatureWindow]
    warnings: List[signals_pb2.SignalWarning]

    def to_dataframe(self, source: str = ""):
        """One row per window per stream (see `affectd.tables`)."""
        return tables.features_dataframe(self.windows, source)


@dataclass
class Explanation:
    """An explanation being generated: iterate it for the tokens as they come; `result`
    (affect.v1 ExplainResult) is set once the last token is read. `text()` reads it all."""

    _events: Iterator[explain_pb2.ExplainResponse]
    result: Optional[explain_pb2.ExplainResult] = None
    tokens: List[str] = field(default_factory=list)
    _cancel: Optional[Callable[[], None]] = None

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if event.HasField("result"):
                self.result = event.result
            else:
                self.tokens.append(event.token)
                yield event.token

    def wait(self) -> explain_pb2.ExplainResult:
        """Reads to the end and returns the result."""
        for _ in self:
            pass
        if self.result is None:
            raise RuntimeError("the explanation ended without a result")
        return self.result

    @property
    def judgements(self) -> List[explain_pb2.Judgement]:
        """The validated judgements (empty when the answer did not parse: see
        `result.raw_text` and `result.parse_error`; no label is ever invented)."""
        return list(self.wait().judgements)

    def cancel(self) -> None:
        """Stops generation on the server."""
        if self._cancel:
            self._cancel()
