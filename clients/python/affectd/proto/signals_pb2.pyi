from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_KIND_UNSPECIFIED: _ClassVar[SignalKind]
    SIGNAL_KIND_EEG: _ClassVar[SignalKind]
    SIGNAL_KIND_EDA: _ClassVar[SignalKind]
    SIGNAL_KIND_ECG: _ClassVar[SignalKind]
    SIGNAL_KIND_PPG: _ClassVar[SignalKind]
    SIGNAL_KIND_RESPIRATION: _ClassVar[SignalKind]
    SIGNAL_KIND_OTHER: _ClassVar[SignalKind]

class SignalWarningKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_WARNING_KIND_UNSPECIFIED: _ClassVar[SignalWarningKind]
    SIGNAL_WARNING_KIND_SAMPLE_GAP: _ClassVar[SignalWarningKind]
    SIGNAL_WARNING_KIND_SAMPLE_OVERLAP: _ClassVar[SignalWarningKind]
    SIGNAL_WARNING_KIND_NON_FINITE: _ClassVar[SignalWarningKind]
    SIGNAL_WARNING_KIND_QUALITY: _ClassVar[SignalWarningKind]
    SIGNAL_WARNING_KIND_CLOCK: _ClassVar[SignalWarningKind]
SIGNAL_KIND_UNSPECIFIED: SignalKind
SIGNAL_KIND_EEG: SignalKind
SIGNAL_KIND_EDA: SignalKind
SIGNAL_KIND_ECG: SignalKind
SIGNAL_KIND_PPG: SignalKind
SIGNAL_KIND_RESPIRATION: SignalKind
SIGNAL_KIND_OTHER: SignalKind
SIGNAL_WARNING_KIND_UNSPECIFIED: SignalWarningKind
SIGNAL_WARNING_KIND_SAMPLE_GAP: SignalWarningKind
SIGNAL_WARNING_KIND_SAMPLE_OVERLAP: SignalWarningKind
SIGNAL_WARNING_KIND_NON_FINITE: SignalWarningKind
SIGNAL_WARNING_KIND_QUALITY: SignalWarningKind
SIGNAL_WARNING_KIND_CLOCK: SignalWarningKind

class ChannelInfo(_message.Message):
    __slots__ = ("label", "unit")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    label: str
    unit: str
    def __init__(self, label: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class StreamInfo(_message.Message):
    __slots__ = ("stream_id", "kind", "nominal_rate_hz", "channels")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NOMINAL_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    kind: SignalKind
    nominal_rate_hz: float
    channels: _containers.RepeatedCompositeFieldContainer[ChannelInfo]
    def __init__(self, stream_id: _Optional[str] = ..., kind: _Optional[_Union[SignalKind, str]] = ..., nominal_rate_hz: _Optional[float] = ..., channels: _Optional[_Iterable[_Union[ChannelInfo, _Mapping]]] = ...) -> None: ...

class SignalChunk(_message.Message):
    __slots__ = ("stream_id", "first_timestamp", "samples", "timestamps", "first_sample_index")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    first_timestamp: float
    samples: _containers.RepeatedScalarFieldContainer[float]
    timestamps: _containers.RepeatedScalarFieldContainer[float]
    first_sample_index: int
    def __init__(self, stream_id: _Optional[str] = ..., first_timestamp: _Optional[float] = ..., samples: _Optional[_Iterable[float]] = ..., timestamps: _Optional[_Iterable[float]] = ..., first_sample_index: _Optional[int] = ...) -> None: ...

class Band(_message.Message):
    __slots__ = ("name", "low_hz", "high_hz")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOW_HZ_FIELD_NUMBER: _ClassVar[int]
    HIGH_HZ_FIELD_NUMBER: _ClassVar[int]
    name: str
    low_hz: float
    high_hz: float
    def __init__(self, name: _Optional[str] = ..., low_hz: _Optional[float] = ..., high_hz: _Optional[float] = ...) -> None: ...

class SignalConfig(_message.Message):
    __slots__ = ("window_s", "hop_s", "eeg_bands", "line_frequency_hz", "baseline_s")
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    HOP_S_FIELD_NUMBER: _ClassVar[int]
    EEG_BANDS_FIELD_NUMBER: _ClassVar[int]
    LINE_FREQUENCY_HZ_FIELD_NUMBER: _ClassVar[int]
    BASELINE_S_FIELD_NUMBER: _ClassVar[int]
    window_s: float
    hop_s: float
    eeg_bands: _containers.RepeatedCompositeFieldContainer[Band]
    line_frequency_hz: float
    baseline_s: float
    def __init__(self, window_s: _Optional[float] = ..., hop_s: _Optional[float] = ..., eeg_bands: _Optional[_Iterable[_Union[Band, _Mapping]]] = ..., line_frequency_hz: _Optional[float] = ..., baseline_s: _Optional[float] = ...) -> None: ...

class BandPower(_message.Message):
    __slots__ = ("channel", "band", "absolute", "relative", "differential_entropy")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIAL_ENTROPY_FIELD_NUMBER: _ClassVar[int]
    channel: str
    band: str
    absolute: float
    relative: float
    differential_entropy: float
    def __init__(self, channel: _Optional[str] = ..., band: _Optional[str] = ..., absolute: _Optional[float] = ..., relative: _Optional[float] = ..., differential_entropy: _Optional[float] = ...) -> None: ...

class Asymmetry(_message.Message):
    __slots__ = ("pair", "value")
    PAIR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    pair: str
    value: float
    def __init__(self, pair: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class ChannelQuality(_message.Message):
    __slots__ = ("channel", "flat", "clipped_fraction", "line_noise_ratio", "artifact_fraction", "non_finite_samples", "usable")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FLAT_FIELD_NUMBER: _ClassVar[int]
    CLIPPED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    LINE_NOISE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    NON_FINITE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    USABLE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    flat: bool
    clipped_fraction: float
    line_noise_ratio: float
    artifact_fraction: float
    non_finite_samples: int
    usable: bool
    def __init__(self, channel: _Optional[str] = ..., flat: _Optional[bool] = ..., clipped_fraction: _Optional[float] = ..., line_noise_ratio: _Optional[float] = ..., artifact_fraction: _Optional[float] = ..., non_finite_samples: _Optional[int] = ..., usable: _Optional[bool] = ...) -> None: ...

class EegFeatures(_message.Message):
    __slots__ = ("band_powers", "asymmetry", "arousal_index", "engagement_index")
    BAND_POWERS_FIELD_NUMBER: _ClassVar[int]
    ASYMMETRY_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_INDEX_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    band_powers: _containers.RepeatedCompositeFieldContainer[BandPower]
    asymmetry: _containers.RepeatedCompositeFieldContainer[Asymmetry]
    arousal_index: float
    engagement_index: float
    def __init__(self, band_powers: _Optional[_Iterable[_Union[BandPower, _Mapping]]] = ..., asymmetry: _Optional[_Iterable[_Union[Asymmetry, _Mapping]]] = ..., arousal_index: _Optional[float] = ..., engagement_index: _Optional[float] = ...) -> None: ...

class Scr(_message.Message):
    __slots__ = ("onset_time", "peak_time", "amplitude", "rise_time_s")
    ONSET_TIME_FIELD_NUMBER: _ClassVar[int]
    PEAK_TIME_FIELD_NUMBER: _ClassVar[int]
    AMPLITUDE_FIELD_NUMBER: _ClassVar[int]
    RISE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    onset_time: float
    peak_time: float
    amplitude: float
    rise_time_s: float
    def __init__(self, onset_time: _Optional[float] = ..., peak_time: _Optional[float] = ..., amplitude: _Optional[float] = ..., rise_time_s: _Optional[float] = ...) -> None: ...

class EdaFeatures(_message.Message):
    __slots__ = ("tonic_mean", "responses", "scr_rate_per_min")
    TONIC_MEAN_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    SCR_RATE_PER_MIN_FIELD_NUMBER: _ClassVar[int]
    tonic_mean: float
    responses: _containers.RepeatedCompositeFieldContainer[Scr]
    scr_rate_per_min: float
    def __init__(self, tonic_mean: _Optional[float] = ..., responses: _Optional[_Iterable[_Union[Scr, _Mapping]]] = ..., scr_rate_per_min: _Optional[float] = ...) -> None: ...

class CardiacFeatures(_message.Message):
    __slots__ = ("beat_times", "heart_rate_bpm", "heart_rate_change_bpm", "rmssd_ms", "sdnn_ms", "pnn50")
    BEAT_TIMES_FIELD_NUMBER: _ClassVar[int]
    HEART_RATE_BPM_FIELD_NUMBER: _ClassVar[int]
    HEART_RATE_CHANGE_BPM_FIELD_NUMBER: _ClassVar[int]
    RMSSD_MS_FIELD_NUMBER: _ClassVar[int]
    SDNN_MS_FIELD_NUMBER: _ClassVar[int]
    PNN50_FIELD_NUMBER: _ClassVar[int]
    beat_times: _containers.RepeatedScalarFieldContainer[float]
    heart_rate_bpm: float
    heart_rate_change_bpm: float
    rmssd_ms: float
    sdnn_ms: float
    pnn50: float
    def __init__(self, beat_times: _Optional[_Iterable[float]] = ..., heart_rate_bpm: _Optional[float] = ..., heart_rate_change_bpm: _Optional[float] = ..., rmssd_ms: _Optional[float] = ..., sdnn_ms: _Optional[float] = ..., pnn50: _Optional[float] = ...) -> None: ...

class RespirationFeatures(_message.Message):
    __slots__ = ("rate_per_min",)
    RATE_PER_MIN_FIELD_NUMBER: _ClassVar[int]
    rate_per_min: float
    def __init__(self, rate_per_min: _Optional[float] = ...) -> None: ...

class AffectEstimate(_message.Message):
    __slots__ = ("valence", "arousal", "reliability", "method")
    VALENCE_FIELD_NUMBER: _ClassVar[int]
    AROUSAL_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    valence: float
    arousal: float
    reliability: float
    method: str
    def __init__(self, valence: _Optional[float] = ..., arousal: _Optional[float] = ..., reliability: _Optional[float] = ..., method: _Optional[str] = ...) -> None: ...

class FeatureWindow(_message.Message):
    __slots__ = ("stream_id", "kind", "start_time", "end_time", "quality", "eeg", "eda", "cardiac", "respiration", "estimate")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    EEG_FIELD_NUMBER: _ClassVar[int]
    EDA_FIELD_NUMBER: _ClassVar[int]
    CARDIAC_FIELD_NUMBER: _ClassVar[int]
    RESPIRATION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    kind: SignalKind
    start_time: float
    end_time: float
    quality: _containers.RepeatedCompositeFieldContainer[ChannelQuality]
    eeg: EegFeatures
    eda: EdaFeatures
    cardiac: CardiacFeatures
    respiration: RespirationFeatures
    estimate: AffectEstimate
    def __init__(self, stream_id: _Optional[str] = ..., kind: _Optional[_Union[SignalKind, str]] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., quality: _Optional[_Iterable[_Union[ChannelQuality, _Mapping]]] = ..., eeg: _Optional[_Union[EegFeatures, _Mapping]] = ..., eda: _Optional[_Union[EdaFeatures, _Mapping]] = ..., cardiac: _Optional[_Union[CardiacFeatures, _Mapping]] = ..., respiration: _Optional[_Union[RespirationFeatures, _Mapping]] = ..., estimate: _Optional[_Union[AffectEstimate, _Mapping]] = ...) -> None: ...

class AnalyzeSignalsRequest(_message.Message):
    __slots__ = ("streams", "chunks", "config")
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[StreamInfo]
    chunks: _containers.RepeatedCompositeFieldContainer[SignalChunk]
    config: SignalConfig
    def __init__(self, streams: _Optional[_Iterable[_Union[StreamInfo, _Mapping]]] = ..., chunks: _Optional[_Iterable[_Union[SignalChunk, _Mapping]]] = ..., config: _Optional[_Union[SignalConfig, _Mapping]] = ...) -> None: ...

class AnalyzeSignalsResponse(_message.Message):
    __slots__ = ("windows", "warnings")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[FeatureWindow]
    warnings: _containers.RepeatedCompositeFieldContainer[SignalWarning]
    def __init__(self, windows: _Optional[_Iterable[_Union[FeatureWindow, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[SignalWarning, _Mapping]]] = ...) -> None: ...

class SignalWarning(_message.Message):
    __slots__ = ("kind", "message", "stream_id", "timestamp", "client_seq", "chunk_index")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    kind: SignalWarningKind
    message: str
    stream_id: str
    timestamp: float
    client_seq: int
    chunk_index: int
    def __init__(self, kind: _Optional[_Union[SignalWarningKind, str]] = ..., message: _Optional[str] = ..., stream_id: _Optional[str] = ..., timestamp: _Optional[float] = ..., client_seq: _Optional[int] = ..., chunk_index: _Optional[int] = ...) -> None: ...
