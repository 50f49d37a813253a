"""Results as pandas DataFrames, with the columns of affectd's own CSV tables (README, "Data
formats"): faces with OpenFace 2's column names, one row per face per frame; feature
windows, one row per window per stream; fused estimates, one row per hop. A value that was
not computed is NaN (an empty cell in the CSV), never 0. pandas is imported on first use
(`pip install affectd[pandas]`)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from .proto import fusion_pb2, signals_pb2, vision_pb2

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The AU numbers affectd estimates, in its order (src/vision/action_units.rs).
AU_NUMBERS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 45)
LANDMARKS = 478
MODALITIES = {
    fusion_pb2.MODALITY_FACE: "face",
    fusion_pb2.MODALITY_EEG: "eeg",
    fusion_pb2.MODALITY_CARDIAC: "cardiac",
    fusion_pb2.MODALITY_EDA: "eda",
    fusion_pb2.MODALITY_RESPIRATION: "respiration",
}
KIND_NAMES = {
    signals_pb2.SIGNAL_KIND_EEG: "eeg",
    signals_pb2.SIGNAL_KIND_EDA: "eda",
    signals_pb2.SIGNAL_KIND_ECG: "ecg",
    signals_pb2.SIGNAL_KIND_PPG: "ppg",
    signals_pb2.SIGNAL_KIND_RESPIRATION: "respiration",
    signals_pb2.SIGNAL_KIND_OTHER: "other",
}
NAN = math.nan


def _pandas():
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("to_dataframe needs pandas: pip install 'affectd[pandas]'") from e
    return pandas


def face_columns() -> list[str]:
    columns = [
        "source", "frame", "timestamp", "face_id", "confidence", "success", "tracked",
        "face_x", "face_y", "face_width", "face_height", "presence", "pose_Rx", "pose_Ry", "pose_Rz",
    ]
    for axis in "xyz":
        columns += [f"{axis}_{i}" for i in range(LANDMARKS)]
    columns += [f"AU{n:02d}_r" for n in AU_NUMBERS] + [f"AU{n:02d}_c" for n in AU_NUMBERS]
    columns += [f"fer_{l}" for l in LABELS] + [f"prototype_{l}" for l in LABELS] + list(LABELS)
    columns += ["valence", "arousal"]
    columns += [f"AU{n:02d}_baseline" for n in AU_NUMBERS] + [f"AU{n:02d}_r_corrected" for n in AU_NUMBERS]
    columns += [f"AU{n:02d}_c_corrected" for n in AU_NUMBERS]
    return columns + ["prototypes_corrected"]


def _distribution(p: Iterable[vision_pb2.LabelProbability]) -> list[float]:
    by = {x.label: x.probability for x in p}
    return [by.get(l, NAN) for l in LABELS]


def face_row(source: str, frame: int, timestamp: float, face: vision_pb2.Face) -> list[Any]:
    presence = face.presence_score if face.HasField("presence_score") else None
    row: list[Any] = [
        source, frame, timestamp, face.face_id, face.detection_score,
        int(presence is None or presence >= 0.5), int(face.tracked),
        face.box.x, face.box.y, face.box.width, face.box.height,
        NAN if presence is None else presence,
    ]
    if face.HasField("head_pose"):
        p = face.head_pose
        row += [math.radians(p.pitch_deg), math.radians(p.yaw_deg), math.radians(p.roll_deg)]
    else:
        row += [NAN] * 3
    if len(face.landmarks) == LANDMARKS:
        row += [p.x for p in face.landmarks] + [p.y for p in face.landmarks] + [p.z for p in face.landmarks]
    else:
        row += [NAN] * (3 * LANDMARKS)
    aus = {a.number: a for a in face.action_units}
    row += [aus[n].intensity if n in aus else NAN for n in AU_NUMBERS]
    row += [int(aus[n].present) if n in aus else NAN for n in AU_NUMBERS]
    if face.HasField("expression"):
        e = face.expression
        row += _distribution(e.fer) + _distribution(e.au_prototypes) + _distribution(e.combined)
        row += [e.valence, e.arousal]
    else:
        row += [NAN] * (3 * len(LABELS) + 2)
    # The person-specific baseline (videos and sessions, once the face's baseline settled).
    row += [aus[n].baseline if n in aus and aus[n].HasField("baseline") else NAN for n in AU_NUMBERS]
    row += [
        aus[n].corrected_intensity if n in aus and aus[n].HasField("corrected_intensity") else NAN
        for n in AU_NUMBERS
    ]
    row += [
        int(aus[n].corrected_present) if n in aus and aus[n].HasField("corrected_present") else NAN
        for n in AU_NUMBERS
    ]
    row.append(int(face.expression.au_prototypes_corrected) if face.HasField("expression") else NAN)
    return row


EVENT_END_NAMES = {
    vision_pb2.EPISODE_END_RETURNED: "returned",
    vision_pb2.EPISODE_END_FACE_LOST: "face_lost",
    vision_pb2.EPISODE_END_STREAM_ENDED: "stream_ended",
    vision_pb2.EPISODE_END_MAX_DURATION: "max_episode_s",
}


def event_columns() -> list[str]:
    """The columns of the export's `expression_events.csv` (src/formats/events.rs)."""
    columns = [
        "source", "face_id", "onset", "apex", "offset", "duration_s", "end", "micro_candidate",
        "peak_motion", "action_units",
    ]
    columns += [f"AU{n:02d}_peak" for n in AU_NUMBERS] + [f"apex_{l}" for l in LABELS]
    return columns + ["dynamics"]


def event_row(source: str, e: vision_pb2.ExpressionEvent) -> list[Any]:
    peaks = {a.number: a.peak_intensity for a in e.action_units}
    dynamics = "; ".join(
        f"{a.name} rose from {a.start_intensity:.2f} to {a.peak_intensity:.2f} in "
        f"{max(0.0, (a.peak_time - e.onset) * 1e3):.0f} ms, held {a.held_s:.2f} s"
        for a in e.action_units
    )
    return [
        source, e.face_id, e.onset, e.apex,
        e.offset if e.HasField("offset") else NAN,
        e.duration_s if e.HasField("duration_s") else NAN,
        EVENT_END_NAMES.get(e.end, ""), int(e.micro_candidate),
        e.peak_motion if e.HasField("peak_motion") else NAN,
        ";".join(a.name for a in e.action_units),
        *[peaks.get(n, NAN) for n in AU_NUMBERS],
        *_distribution(e.apex_expression),
        dynamics,
    ]


def events_dataframe(events: Iterable[vision_pb2.ExpressionEvent], source: str = ""):
    """Ended expression episodes (`ExpressionEvent`s of kind ENDED; started ones are left
    out), one row each, the columns of the export's `expression_events.csv`."""
    rows = [event_row(source, e) for e in events if e.kind == vision_pb2.ExpressionEvent.KIND_ENDED]
    return _pandas().DataFrame(rows, columns=event_columns())


def faces_dataframe(results: Iterable[Any], source: str = ""):
    """Faces of `FaceFrameResult`s (a session's) or `AnalyzeFrameResponse`s: one row per
    face per frame, OpenFace 2 columns."""
    rows = []
    for i, r in enumerate(results):
        frame = getattr(r, "client_seq", i)
        timestamp = getattr(r, "timestamp", 0.0)
        for face in r.faces:
            rows.append(face_row(source, frame, timestamp, face))
    return _pandas().DataFrame(rows, columns=face_columns())


FEATURE_FIXED = [
    "source", "stream", "kind", "start_time", "end_time", "channels", "usable_channels",
    "non_finite_samples", "valence", "arousal", "reliability", "arousal_index",
    "engagement_index", "beats", "heart_rate_bpm", "heart_rate_change_bpm", "rmssd_ms",
    "sdnn_ms", "pnn50", "tonic_mean", "scr_count", "scr_rate_per_min", "scr_amplitude_mean",
    "breathing_rate_per_min",
]


def _optional(message: Any, field: str) -> float:
    return getattr(message, field) if message.HasField(field) else NAN


def feature_cells(source: str, w: signals_pb2.FeatureWindow) -> dict[str, Any]:
    c: dict[str, Any] = {
        "source": source, "stream": w.stream_id, "kind": KIND_NAMES.get(w.kind, "unknown"),
        "start_time": w.start_time, "end_time": w.end_time, "channels": len(w.quality),
        "usable_channels": sum(1 for q in w.quality if q.usable),
        "non_finite_samples": sum(q.non_finite_samples for q in w.quality),
    }
    if w.HasField("estimate"):
        c.update(valence=w.estimate.valence, arousal=w.estimate.arousal, reliability=w.estimate.reliability)
    which = w.WhichOneof("features")
    if which == "eeg":
        f = w.eeg
        c["arousal_index"] = _optional(f, "arousal_index")
        c["engagement_index"] = _optional(f, "engagement_index")
        for a in f.asymmetry:
            c[f"faa_{a.pair}"] = a.value
        for b in f.band_powers:
            stem = f"{b.band}_{b.channel}"
            c[f"{stem}_abs"] = b.absolute
            c[f"{stem}_rel"] = _optional(b, "relative")
            c[f"{stem}_de"] = _optional(b, "differential_entropy")
    elif which == "cardiac":
        f = w.cardiac
        c["beats"] = len(f.beat_times)
        for name in ("heart_rate_bpm", "heart_rate_change_bpm", "rmssd_ms", "sdnn_ms", "pnn50"):
            c[name] = _optional(f, name)
    elif which == "eda":
        f = w.eda
        c["tonic_mean"] = f.tonic_mean
        c["scr_count"] = len(f.responses)
        c["scr_rate_per_min"] = f.scr_rate_per_min
        c["scr_amplitude_mean"] = (
            sum(r.amplitude for r in f.responses) / len(f.responses) if f.responses else NAN
        )
    elif which == "respiration":
        c["breathing_rate_per_min"] = _optional(w.respiration, "rate_per_min")
    return c


def features_dataframe(windows: Iterable[signals_pb2.FeatureWindow], source: str = ""):
    """Feature windows: one row per window per stream; the fixed columns, then per-recording
    `faa_<pair>` and `<band>_<channel>_abs|_rel|_de` in order of first appearance."""
    rows = [feature_cells(source, w) for w in windows]
    extra: list[str] = []
    for r in rows:
        extra += [k for k in r if k not in FEATURE_FIXED and k not in extra]
    return _pandas().DataFrame(rows, columns=FEATURE_FIXED + extra)


def fused_cells(source: str, e: fusion_pb2.FusedEstimate) -> dict[str, Any]:
    c: dict[str, Any] = {
        "source": source, "start_time": e.start_time, "end_time": e.end_time,
        "valence": _optional(e, "valence"), "arousal": _optional(e, "arousal"), "method": e.method,
        "top_label": max(e.labels, key=lambda l: l.probability).label if e.labels else "",
    }
    for number, name in MODALITIES.items():
        contribution = next((x for x in e.contributions if x.modality == number), None)
        c[f"{name}.weight"] = contribution.weight if contribution else NAN
        c[f"{name}.reliability"] = contribution.reliability if contribution else NAN
        c[f"{name}.valence"] = _optional(contribution, "valence") if contribution else NAN
        c[f"{name}.arousal"] = _optional(contribution, "arousal") if contribution else NAN
    for l in e.labels:
        c[f"p.{l.label}"] = l.probability
    return c


FUSED_FIXED = ["source", "start_time", "end_time", "valence", "arousal", "method", "top_label"] + [
    f"{m}.{what}" for m in MODALITIES.values() for what in ("weight", "reliability", "valence", "arousal")
]


def fused_dataframe(estimates: Iterable[fusion_pb2.FusedEstimate], source: str = ""):
    """Fused estimates: one row per hop (the columns of the export's fused.csv)."""
    rows = [fused_cells(source, e) for e in estimates]
    fixed = FUSED_FIXED
    labels: list[str] = []
    for r in rows:
        labels += [k for k in r if k.startswith("p.") and k not in labels]
    return _pandas().DataFrame(rows, columns=fixed + labels)
