from affectd.proto import explain_pb2 as _explain_pb2
from affectd.proto import fusion_pb2 as _fusion_pb2
from affectd.proto import session_pb2 as _session_pb2
from affectd.proto import signals_pb2 as _signals_pb2
from affectd.proto import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATUS_UNSPECIFIED: _ClassVar[ModelStatus]
    MODEL_STATUS_LOADED: _ClassVar[ModelStatus]
    MODEL_STATUS_AVAILABLE: _ClassVar[ModelStatus]
    MODEL_STATUS_MISSING: _ClassVar[ModelStatus]
    MODEL_STATUS_CORRUPT: _ClassVar[ModelStatus]
    MODEL_STATUS_LOAD_FAILED: _ClassVar[ModelStatus]
MODEL_STATUS_UNSPECIFIED: ModelStatus
MODEL_STATUS_LOADED: ModelStatus
MODEL_STATUS_AVAILABLE: ModelStatus
MODEL_STATUS_MISSING: ModelStatus
MODEL_STATUS_CORRUPT: ModelStatus
MODEL_STATUS_LOAD_FAILED: ModelStatus

class ClockSyncRequest(_message.Message):
    __slots__ = ("client_send_time", "session_id", "measured_offset_s", "measured_rtt_s")
    CLIENT_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MEASURED_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    MEASURED_RTT_S_FIELD_NUMBER: _ClassVar[int]
    client_send_time: float
    session_id: str
    measured_offset_s: float
    measured_rtt_s: float
    def __init__(self, client_send_time: _Optional[float] = ..., session_id: _Optional[str] = ..., measured_offset_s: _Optional[float] = ..., measured_rtt_s: _Optional[float] = ...) -> None: ...

class ClockSyncResponse(_message.Message):
    __slots__ = ("client_send_time", "server_receive_time", "server_send_time")
    CLIENT_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    SERVER_RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    SERVER_SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    client_send_time: float
    server_receive_time: float
    server_send_time: float
    def __init__(self, client_send_time: _Optional[float] = ..., server_receive_time: _Optional[float] = ..., server_send_time: _Optional[float] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "task", "file", "sha256", "source", "license", "status", "reason", "size_bytes", "load_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    task: str
    file: str
    sha256: str
    source: str
    license: str
    status: ModelStatus
    reason: str
    size_bytes: int
    load_ms: float
    def __init__(self, id: _Optional[str] = ..., task: _Optional[str] = ..., file: _Optional[str] = ..., sha256: _Optional[str] = ..., source: _Optional[str] = ..., license: _Optional[str] = ..., status: _Optional[_Union[ModelStatus, str]] = ..., reason: _Optional[str] = ..., size_bytes: _Optional[int] = ..., load_ms: _Optional[float] = ...) -> None: ...

class Capability(_message.Message):
    __slots__ = ("name", "available", "reason", "models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    reason: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class BackendInfo(_message.Message):
    __slots__ = ("name", "available", "reason", "default_model", "accepts_images")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_IMAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    reason: str
    default_model: str
    accepts_images: bool
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ..., default_model: _Optional[str] = ..., accepts_images: _Optional[bool] = ...) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("version", "proto_package", "models", "capabilities", "backends", "onnxruntime_version", "onnxruntime_library", "server_time", "max_message_bytes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTO_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_LIBRARY_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    version: str
    proto_package: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    backends: _containers.RepeatedCompositeFieldContainer[BackendInfo]
    onnxruntime_version: str
    onnxruntime_library: str
    server_time: float
    max_message_bytes: int
    def __init__(self, version: _Optional[str] = ..., proto_package: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ..., backends: _Optional[_Iterable[_Union[BackendInfo, _Mapping]]] = ..., onnxruntime_version: _Optional[str] = ..., onnxruntime_library: _Optional[str] = ..., server_time: _Optional[float] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...
