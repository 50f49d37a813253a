from affectd.proto import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CitationVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CITATION_VERDICT_UNSPECIFIED: _ClassVar[CitationVerdict]
    CITATION_VERDICT_SUPPORTED: _ClassVar[CitationVerdict]
    CITATION_VERDICT_UNSUPPORTED: _ClassVar[CitationVerdict]
    CITATION_VERDICT_CONTRADICTED: _ClassVar[CitationVerdict]
CITATION_VERDICT_UNSPECIFIED: CitationVerdict
CITATION_VERDICT_SUPPORTED: CitationVerdict
CITATION_VERDICT_UNSUPPORTED: CitationVerdict
CITATION_VERDICT_CONTRADICTED: CitationVerdict

class ExplainRequest(_message.Message):
    __slots__ = ("image", "session_id", "recorded", "labels", "backend", "model", "max_tokens", "temperature", "top_p", "seed", "include_image", "context", "frame_options", "face_ids")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
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
    recorded: RecordedMoment
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
    def __init__(self, image: _Optional[_Union[_vision_pb2.ImageInput, _Mapping]] = ..., session_id: _Optional[str] = ..., recorded: _Optional[_Union[RecordedMoment, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., include_image: _Optional[bool] = ..., context: _Optional[str] = ..., frame_options: _Optional[_Union[_vision_pb2.FrameOptions, _Mapping]] = ..., face_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RecordedMoment(_message.Message):
    __slots__ = ("session_id", "time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    time: float
    def __init__(self, session_id: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class Judgement(_message.Message):
    __slots__ = ("face_id", "label", "confidence", "valence", "arousal", "rationale", "label_probabilities", "citations", "grounding", "combined_label", "combined_probabilities", "label_probability_method")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    LABEL_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    COMBINED_LABEL_FIELD_NUMBER: _ClassVar[int]
    COMBINED_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_PROBABILITY_METHOD_FIELD_NUMBER: _ClassVar[int]
    face_id: int
    label: str
    confidence: float
    valence: float
    arousal: float
    rationale: str
    label_probabilities: _containers.RepeatedCompositeFieldContainer[_vision_pb2.LabelProbability]
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    grounding: float
    combined_label: str
    combined_probabilities: _containers.RepeatedCompositeFieldContainer[_vision_pb2.LabelProbability]
    label_probability_method: str
    def __init__(self, face_id: _Optional[int] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., valence: _Optional[float] = ..., arousal: _Optional[float] = ..., rationale: _Optional[str] = ..., label_probabilities: _Optional[_Iterable[_Union[_vision_pb2.LabelProbability, _Mapping]]] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., grounding: _Optional[float] = ..., combined_label: _Optional[str] = ..., combined_probabilities: _Optional[_Iterable[_Union[_vision_pb2.LabelProbability, _Mapping]]] = ..., label_probability_method: _Optional[str] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("key", "direction", "value", "verdict", "note")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    key: str
    direction: str
    value: float
    verdict: CitationVerdict
    note: str
    def __init__(self, key: _Optional[str] = ..., direction: _Optional[str] = ..., value: _Optional[float] = ..., verdict: _Optional[_Union[CitationVerdict, str]] = ..., note: _Optional[str] = ...) -> None: ...

class Stages(_message.Message):
    __slots__ = ("scene", "body", "others", "cues", "check")
    SCENE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    OTHERS_FIELD_NUMBER: _ClassVar[int]
    CUES_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    scene: str
    body: str
    others: str
    cues: str
    check: str
    def __init__(self, scene: _Optional[str] = ..., body: _Optional[str] = ..., others: _Optional[str] = ..., cues: _Optional[str] = ..., check: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("parsed", "judgements", "raw_text", "parse_error", "repair_attempts", "template_id", "backend", "model", "timings", "image_included", "stages", "constrained", "combination_method")
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
    STAGES_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINED_FIELD_NUMBER: _ClassVar[int]
    COMBINATION_METHOD_FIELD_NUMBER: _ClassVar[int]
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
    stages: Stages
    constrained: bool
    combination_method: str
    def __init__(self, parsed: _Optional[bool] = ..., judgements: _Optional[_Iterable[_Union[Judgement, _Mapping]]] = ..., raw_text: _Optional[str] = ..., parse_error: _Optional[str] = ..., repair_attempts: _Optional[int] = ..., template_id: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., timings: _Optional[_Union[ExplainTimings, _Mapping]] = ..., image_included: _Optional[bool] = ..., stages: _Optional[_Union[Stages, _Mapping]] = ..., constrained: _Optional[bool] = ..., combination_method: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("token", "result")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    token: str
    result: ExplainResult
    def __init__(self, token: _Optional[str] = ..., result: _Optional[_Union[ExplainResult, _Mapping]] = ...) -> None: ...
