from affectd.proto import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Modality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODALITY_UNSPECIFIED: _ClassVar[Modality]
    MODALITY_FACE: _ClassVar[Modality]
    MODALITY_EEG: _ClassVar[Modality]
    MODALITY_CARDIAC: _ClassVar[Modality]
    MODALITY_EDA: _ClassVar[Modality]
    MODALITY_RESPIRATION: _ClassVar[Modality]
MODALITY_UNSPECIFIED: Modality
MODALITY_FACE: Modality
MODALITY_EEG: Modality
MODALITY_CARDIAC: Modality
MODALITY_EDA: Modality
MODALITY_RESPIRATION: Modality

class ModalityContribution(_message.Message):
    __slots__ = ("modality", "weight", "reliability", "valence", "arousal")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    modality: Modality
    weight: float
    reliability: float
    valence: float
    arousal: float
    def __init__(self, modality: _Optional[_Union[Modality, str]] = ..., weight: _Optional[float] = ..., reliability: _Optional[float] = ..., valence: _Optional[float] = ..., arousal: _Optional[float] = ...) -> None: ...

class FusedEstimate(_message.Message):
    __slots__ = ("start_time", "end_time", "valence", "arousal", "labels", "contributions", "method")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    start_time: float
    end_time: float
    valence: float
    arousal: float
    labels: _containers.RepeatedCompositeFieldContainer[_vision_pb2.LabelProbability]
    contributions: _containers.RepeatedCompositeFieldContainer[ModalityContribution]
    method: str
    def __init__(self, start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., valence: _Optional[float] = ..., arousal: _Optional[float] = ..., labels: _Optional[_Iterable[_Union[_vision_pb2.LabelProbability, _Mapping]]] = ..., contributions: _Optional[_Iterable[_Union[ModalityContribution, _Mapping]]] = ..., method: _Optional[str] = ...) -> None: ...

class CalibrateRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CalibrateResponse(_message.Message):
    __slots__ = ("classes", "hops", "folds", "balanced_accuracy", "chance_level", "chance_95th_percentile", "features", "method")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    FOLDS_FIELD_NUMBER: _ClassVar[int]
    BALANCED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CHANCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CHANCE_95TH_PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    hops: int
    folds: int
    balanced_accuracy: float
    chance_level: float
    chance_95th_percentile: float
    features: _containers.RepeatedScalarFieldContainer[str]
    method: str
    def __init__(self, classes: _Optional[_Iterable[str]] = ..., hops: _Optional[int] = ..., folds: _Optional[int] = ..., balanced_accuracy: _Optional[float] = ..., chance_level: _Optional[float] = ..., chance_95th_percentile: _Optional[float] = ..., features: _Optional[_Iterable[str]] = ..., method: _Optional[str] = ...) -> None: ...
