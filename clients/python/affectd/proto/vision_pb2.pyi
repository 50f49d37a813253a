from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGBA8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGRA8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]

class EpisodeEnd(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EPISODE_END_UNSPECIFIED: _ClassVar[EpisodeEnd]
    EPISODE_END_RETURNED: _ClassVar[EpisodeEnd]
    EPISODE_END_FACE_LOST: _ClassVar[EpisodeEnd]
    EPISODE_END_STREAM_ENDED: _ClassVar[EpisodeEnd]
    EPISODE_END_MAX_DURATION: _ClassVar[EpisodeEnd]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_BGR8: PixelFormat
PIXEL_FORMAT_RGBA8: PixelFormat
PIXEL_FORMAT_BGRA8: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
EPISODE_END_UNSPECIFIED: EpisodeEnd
EPISODE_END_RETURNED: EpisodeEnd
EPISODE_END_FACE_LOST: EpisodeEnd
EPISODE_END_STREAM_ENDED: EpisodeEnd
EPISODE_END_MAX_DURATION: EpisodeEnd

class ImageInput(_message.Message):
    __slots__ = ("encoded", "raw")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawImage
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("pixels", "width", "height", "format", "stride_bytes")
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STRIDE_BYTES_FIELD_NUMBER: _ClassVar[int]
    pixels: bytes
    width: int
    height: int
    format: PixelFormat
    stride_bytes: int
    def __init__(self, pixels: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., stride_bytes: _Optional[int] = ...) -> None: ...

class MarkOptions(_message.Message):
    __slots__ = ("boxes", "landmarks", "au_tags", "face_ids", "motion")
    BOXES_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    AU_TAGS_FIELD_NUMBER: _ClassVar[int]
    FACE_IDS_FIELD_NUMBER: _ClassVar[int]
    MOTION_FIELD_NUMBER: _ClassVar[int]
    boxes: bool
    landmarks: bool
    au_tags: bool
    face_ids: bool
    motion: bool
    def __init__(self, boxes: _Optional[bool] = ..., landmarks: _Optional[bool] = ..., au_tags: _Optional[bool] = ..., face_ids: _Optional[bool] = ..., motion: _Optional[bool] = ...) -> None: ...

class FrameOptions(_message.Message):
    __slots__ = ("detector_max_side", "min_face_score", "max_faces", "skip_landmarks", "skip_blendshapes", "skip_expression", "return_marked_image", "marks", "marked_image_format")
    DETECTOR_MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    SKIP_LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    SKIP_BLENDSHAPES_FIELD_NUMBER: _ClassVar[int]
    SKIP_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    RETURN_MARKED_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MARKS_FIELD_NUMBER: _ClassVar[int]
    MARKED_IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    detector_max_side: int
    min_face_score: float
    max_faces: int
    skip_landmarks: bool
    skip_blendshapes: bool
    skip_expression: bool
    return_marked_image: bool
    marks: MarkOptions
    marked_image_format: ImageFormat
    def __init__(self, detector_max_side: _Optional[int] = ..., min_face_score: _Optional[float] = ..., max_faces: _Optional[int] = ..., skip_landmarks: _Optional[bool] = ..., skip_blendshapes: _Optional[bool] = ..., skip_expression: _Optional[bool] = ..., return_marked_image: _Optional[bool] = ..., marks: _Optional[_Union[MarkOptions, _Mapping]] = ..., marked_image_format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    width: float
    height: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ...) -> None: ...

class Point2(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Point3(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class HeadPose(_message.Message):
    __slots__ = ("yaw_deg", "pitch_deg", "roll_deg")
    YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    def __init__(self, yaw_deg: _Optional[float] = ..., pitch_deg: _Optional[float] = ..., roll_deg: _Optional[float] = ...) -> None: ...

class Blendshape(_message.Message):
    __slots__ = ("name", "score")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ActionUnit(_message.Message):
    __slots__ = ("number", "name", "intensity", "present", "baseline", "corrected_intensity", "corrected_present")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_PRESENT_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    intensity: float
    present: bool
    baseline: float
    corrected_intensity: float
    corrected_present: bool
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ..., intensity: _Optional[float] = ..., present: _Optional[bool] = ..., baseline: _Optional[float] = ..., corrected_intensity: _Optional[float] = ..., corrected_present: _Optional[bool] = ...) -> None: ...

class LabelProbability(_message.Message):
    __slots__ = ("label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    probability: float
    def __init__(self, label: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Expression(_message.Message):
    __slots__ = ("fer", "au_prototypes", "combined", "valence", "arousal", "au_prototypes_corrected")
    FER_FIELD_NUMBER: _ClassVar[int]
    AU_PROTOTYPES_FIELD_NUMBER: _ClassVar[int]
    COMBINED_FIELD_NUMBER: _ClassVar[int]
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    AU_PROTOTYPES_CORRECTED_FIELD_NUMBER: _ClassVar[int]
    fer: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    au_prototypes: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    combined: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    valence: float
    arousal: float
    au_prototypes_corrected: bool
    def __init__(self, fer: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ..., au_prototypes: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ..., combined: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ..., valence: _Optional[float] = ..., arousal: _Optional[float] = ..., au_prototypes_corrected: _Optional[bool] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("face_id", "detection_score", "box", "keypoints", "landmarks", "presence_score", "head_pose", "blendshapes", "action_units", "expression", "tracked", "au_baseline_method")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSE_FIELD_NUMBER: _ClassVar[int]
    BLENDSHAPES_FIELD_NUMBER: _ClassVar[int]
    ACTION_UNITS_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    TRACKED_FIELD_NUMBER: _ClassVar[int]
    AU_BASELINE_METHOD_FIELD_NUMBER: _ClassVar[int]
    face_id: int
    detection_score: float
    box: BoundingBox
    keypoints: _containers.RepeatedCompositeFieldContainer[Point2]
    landmarks: _containers.RepeatedCompositeFieldContainer[Point3]
    presence_score: float
    head_pose: HeadPose
    blendshapes: _containers.RepeatedCompositeFieldContainer[Blendshape]
    action_units: _containers.RepeatedCompositeFieldContainer[ActionUnit]
    expression: Expression
    tracked: bool
    au_baseline_method: str
    def __init__(self, face_id: _Optional[int] = ..., detection_score: _Optional[float] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ..., keypoints: _Optional[_Iterable[_Union[Point2, _Mapping]]] = ..., landmarks: _Optional[_Iterable[_Union[Point3, _Mapping]]] = ..., presence_score: _Optional[float] = ..., head_pose: _Optional[_Union[HeadPose, _Mapping]] = ..., blendshapes: _Optional[_Iterable[_Union[Blendshape, _Mapping]]] = ..., action_units: _Optional[_Iterable[_Union[ActionUnit, _Mapping]]] = ..., expression: _Optional[_Union[Expression, _Mapping]] = ..., tracked: _Optional[bool] = ..., au_baseline_method: _Optional[str] = ...) -> None: ...

class EpisodeActionUnit(_message.Message):
    __slots__ = ("number", "name", "start_intensity", "peak_intensity", "peak_time", "held_s")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    PEAK_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    PEAK_TIME_FIELD_NUMBER: _ClassVar[int]
    HELD_S_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    start_intensity: float
    peak_intensity: float
    peak_time: float
    held_s: float
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ..., start_intensity: _Optional[float] = ..., peak_intensity: _Optional[float] = ..., peak_time: _Optional[float] = ..., held_s: _Optional[float] = ...) -> None: ...

class ExpressionEvent(_message.Message):
    __slots__ = ("kind", "face_id", "onset", "apex", "offset", "duration_s", "action_units", "apex_expression", "peak_motion", "micro_candidate", "end")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ExpressionEvent.Kind]
        KIND_STARTED: _ClassVar[ExpressionEvent.Kind]
        KIND_ENDED: _ClassVar[ExpressionEvent.Kind]
    KIND_UNSPECIFIED: ExpressionEvent.Kind
    KIND_STARTED: ExpressionEvent.Kind
    KIND_ENDED: ExpressionEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    ONSET_FIELD_NUMBER: _ClassVar[int]
    APEX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    ACTION_UNITS_FIELD_NUMBER: _ClassVar[int]
    APEX_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    PEAK_MOTION_FIELD_NUMBER: _ClassVar[int]
    MICRO_CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    kind: ExpressionEvent.Kind
    face_id: int
    onset: float
    apex: float
    offset: float
    duration_s: float
    action_units: _containers.RepeatedCompositeFieldContainer[EpisodeActionUnit]
    apex_expression: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    peak_motion: float
    micro_candidate: bool
    end: EpisodeEnd
    def __init__(self, kind: _Optional[_Union[ExpressionEvent.Kind, str]] = ..., face_id: _Optional[int] = ..., onset: _Optional[float] = ..., apex: _Optional[float] = ..., offset: _Optional[float] = ..., duration_s: _Optional[float] = ..., action_units: _Optional[_Iterable[_Union[EpisodeActionUnit, _Mapping]]] = ..., apex_expression: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ..., peak_motion: _Optional[float] = ..., micro_candidate: _Optional[bool] = ..., end: _Optional[_Union[EpisodeEnd, str]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    ms: float
    def __init__(self, stage: _Optional[str] = ..., ms: _Optional[float] = ...) -> None: ...

class AnalyzeFrameRequest(_message.Message):
    __slots__ = ("image", "options", "timestamp")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    image: ImageInput
    options: FrameOptions
    timestamp: float
    def __init__(self, image: _Optional[_Union[ImageInput, _Mapping]] = ..., options: _Optional[_Union[FrameOptions, _Mapping]] = ..., timestamp: _Optional[float] = ...) -> None: ...

class AnalyzeFrameResponse(_message.Message):
    __slots__ = ("faces", "image_width", "image_height", "timestamp", "timings", "marked_image", "marked_image_mime")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MARKED_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MARKED_IMAGE_MIME_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_width: int
    image_height: int
    timestamp: float
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    marked_image: bytes
    marked_image_mime: str
    def __init__(self, faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., timestamp: _Optional[float] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., marked_image: _Optional[bytes] = ..., marked_image_mime: _Optional[str] = ...) -> None: ...
