from affect.v1 import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExplainRequest(_message.Message):
    __slots__ = ("image", "session_id", "labels", "backend", "model", "max_tokens", "temperature", "top_p", "seed", "include_image", "context", "frame_options", "face_ids")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    FRAME_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    image: _vision_pb2.ImageInput
    session_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    model: str
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    include_image: bool
    context: str
    frame_options: _vision_pb2.FrameOptions
    face_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, image: _Optional[_Union[_vision_pb2.ImageInput, _Mapping]] = ..., session_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., include_image: _Optional[bool] = ..., context: _Optional[str] = ..., frame_options: _Optional[_Union[_vision_pb2.FrameOptions, _Mapping]] = ..., face_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Judgement(_message.Message):
    __slots__ = ("face_id", "label", "confidence", "valence", "arousal", "rationale")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    face_id: int
    label: str
    confidence: float
    valence: float
    arousal: float
    rationale: str
    def __init__(self, face_id: _Optional[int] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., valence: _Optional[float] = ..., arousal: _Optional[float] = ..., rationale: _Optional[str] = ...) -> None: ...

class ExplainTimings(_message.Message):
    __slots__ = ("time_to_first_token_ms", "prompt_tokens", "generated_tokens", "prompt_tokens_per_s", "generation_tokens_per_s", "total_ms")
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    time_to_first_token_ms: float
    prompt_tokens: int
    generated_tokens: int
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    total_ms: float
    def __init__(self, time_to_first_token_ms: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., prompt_tokens_per_s: _Optional[float] = ..., generation_tokens_per_s: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class ExplainResult(_message.Message):
    __slots__ = ("parsed", "judgements", "raw_text", "parse_error", "repair_attempts", "template_id", "backend", "model", "timings", "image_included")
    PARSED_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENTS_FIELD_NUMBER: _ClassVar[int]
    RAW_TEXT_FIELD_NUMBER: _ClassVar[int]
    PARSE_ERROR_FIELD_NUMBER: _ClassVar[int]
    REPAIR_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INCLUDED_FIELD_NUMBER: _ClassVar[int]
    parsed: bool
    judgements: _containers.RepeatedCompositeFieldContainer[Judgement]
    raw_text: str
    parse_error: str
    repair_attempts: int
    template_id: str
    backend: str
    model: str
    timings: ExplainTimings
    image_included: bool
    def __init__(self, parsed: _Optional[bool] = ..., judgements: _Optional[_Iterable[_Union[Judgement, _Mapping]]] = ..., raw_text: _Optional[str] = ..., parse_error: _Optional[str] = ..., repair_attempts: _Optional[int] = ..., template_id: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., timings: _Optional[_Union[ExplainTimings, _Mapping]] = ..., image_included: _Optional[bool] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("token", "result")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    token: str
    result: ExplainResult
    def __init__(self, token: _Optional[str] = ..., result: _Optional[_Union[ExplainResult, _Mapping]] = ...) -> None: ...
