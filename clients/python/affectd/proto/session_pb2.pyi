from affectd.proto import explain_pb2 as _explain_pb2
from affectd.proto import fusion_pb2 as _fusion_pb2
from affectd.proto import signals_pb2 as _signals_pb2
from affectd.proto import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionWarningKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_WARNING_KIND_UNSPECIFIED: _ClassVar[SessionWarningKind]
    SESSION_WARNING_KIND_FRAME_SKIPPED: _ClassVar[SessionWarningKind]
    SESSION_WARNING_KIND_EXPLAIN_FAILED: _ClassVar[SessionWarningKind]
SESSION_WARNING_KIND_UNSPECIFIED: SessionWarningKind
SESSION_WARNING_KIND_FRAME_SKIPPED: SessionWarningKind
SESSION_WARNING_KIND_EXPLAIN_FAILED: SessionWarningKind

class StreamRequest(_message.Message):
    __slots__ = ("client_seq", "config", "frame", "chunk", "marker", "explain", "end")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    MARKER_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    config: SessionConfig
    frame: Frame
    chunk: _signals_pb2.SignalChunk
    marker: Marker
    explain: _explain_pb2.ExplainRequest
    end: EndSession
    def __init__(self, client_seq: _Optional[int] = ..., config: _Optional[_Union[SessionConfig, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., chunk: _Optional[_Union[_signals_pb2.SignalChunk, _Mapping]] = ..., marker: _Optional[_Union[Marker, _Mapping]] = ..., explain: _Optional[_Union[_explain_pb2.ExplainRequest, _Mapping]] = ..., end: _Optional[_Union[EndSession, _Mapping]] = ...) -> None: ...

class SessionConfig(_message.Message):
    __slots__ = ("session_id", "participant", "streams", "frame_options", "signal_config", "no_record", "metadata", "detect_every_n_frames")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    FRAME_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_CONFIG_FIELD_NUMBER: _ClassVar[int]
    NO_RECORD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DETECT_EVERY_N_FRAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    participant: str
    streams: _containers.RepeatedCompositeFieldContainer[_signals_pb2.StreamInfo]
    frame_options: _vision_pb2.FrameOptions
    signal_config: _signals_pb2.SignalConfig
    no_record: bool
    metadata: _containers.ScalarMap[str, str]
    detect_every_n_frames: int
    def __init__(self, session_id: _Optional[str] = ..., participant: _Optional[str] = ..., streams: _Optional[_Iterable[_Union[_signals_pb2.StreamInfo, _Mapping]]] = ..., frame_options: _Optional[_Union[_vision_pb2.FrameOptions, _Mapping]] = ..., signal_config: _Optional[_Union[_signals_pb2.SignalConfig, _Mapping]] = ..., no_record: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., detect_every_n_frames: _Optional[int] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("timestamp", "image")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    timestamp: float
    image: _vision_pb2.ImageInput
    def __init__(self, timestamp: _Optional[float] = ..., image: _Optional[_Union[_vision_pb2.ImageInput, _Mapping]] = ...) -> None: ...

class Marker(_message.Message):
    __slots__ = ("timestamp", "label", "duration_s")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    timestamp: float
    label: str
    duration_s: float
    def __init__(self, timestamp: _Optional[float] = ..., label: _Optional[str] = ..., duration_s: _Optional[float] = ...) -> None: ...

class EndSession(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("client_seq", "started", "faces", "features", "fused", "ack", "signal_warning", "explain", "ended", "warning", "expression_event")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FUSED_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_WARNING_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_EVENT_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    started: SessionStarted
    faces: FaceFrameResult
    features: _signals_pb2.FeatureWindow
    fused: _fusion_pb2.FusedEstimate
    ack: Ack
    signal_warning: _signals_pb2.SignalWarning
    explain: _explain_pb2.ExplainResponse
    ended: SessionEnded
    warning: SessionWarning
    expression_event: _vision_pb2.ExpressionEvent
    def __init__(self, client_seq: _Optional[int] = ..., started: _Optional[_Union[SessionStarted, _Mapping]] = ..., faces: _Optional[_Union[FaceFrameResult, _Mapping]] = ..., features: _Optional[_Union[_signals_pb2.FeatureWindow, _Mapping]] = ..., fused: _Optional[_Union[_fusion_pb2.FusedEstimate, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., signal_warning: _Optional[_Union[_signals_pb2.SignalWarning, _Mapping]] = ..., explain: _Optional[_Union[_explain_pb2.ExplainResponse, _Mapping]] = ..., ended: _Optional[_Union[SessionEnded, _Mapping]] = ..., warning: _Optional[_Union[SessionWarning, _Mapping]] = ..., expression_event: _Optional[_Union[_vision_pb2.ExpressionEvent, _Mapping]] = ...) -> None: ...

class SessionStarted(_message.Message):
    __slots__ = ("session_id", "server_time", "recording")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    RECORDING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    server_time: float
    recording: bool
    def __init__(self, session_id: _Optional[str] = ..., server_time: _Optional[float] = ..., recording: _Optional[bool] = ...) -> None: ...

class FaceFrameResult(_message.Message):
    __slots__ = ("client_seq", "timestamp", "faces", "timings")
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    timestamp: float
    faces: _containers.RepeatedCompositeFieldContainer[_vision_pb2.Face]
    timings: _containers.RepeatedCompositeFieldContainer[_vision_pb2.StageTiming]
    def __init__(self, client_seq: _Optional[int] = ..., timestamp: _Optional[float] = ..., faces: _Optional[_Iterable[_Union[_vision_pb2.Face, _Mapping]]] = ..., timings: _Optional[_Iterable[_Union[_vision_pb2.StageTiming, _Mapping]]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("client_seq",)
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    client_seq: int
    def __init__(self, client_seq: _Optional[int] = ...) -> None: ...

class SessionWarning(_message.Message):
    __slots__ = ("kind", "message", "client_seq", "timestamp")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    kind: SessionWarningKind
    message: str
    client_seq: int
    timestamp: float
    def __init__(self, kind: _Optional[_Union[SessionWarningKind, str]] = ..., message: _Optional[str] = ..., client_seq: _Optional[int] = ..., timestamp: _Optional[float] = ...) -> None: ...

class SessionEnded(_message.Message):
    __slots__ = ("session_id", "frames", "chunks", "markers", "reason", "frames_analysed")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    MARKERS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ANALYSED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frames: int
    chunks: int
    markers: int
    reason: str
    frames_analysed: int
    def __init__(self, session_id: _Optional[str] = ..., frames: _Optional[int] = ..., chunks: _Optional[int] = ..., markers: _Optional[int] = ..., reason: _Optional[str] = ..., frames_analysed: _Optional[int] = ...) -> None: ...
