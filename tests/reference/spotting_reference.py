#!/usr/bin/env python3
"""Reference implementation of affectd's expression-episode spotting (numpy only), for the
parity test: it reads what `affectd analyze VIDEO` wrote (JSON lines: each frame's raw AU
estimates and mesh) and spots episodes again, independently of the Rust code, following the
method as documented in src/vision/dynamics/ (baseline.rs, motion.rs, spotting.rs, mod.rs):

1. Baseline: per tracked face and AU, a histogram (0.01 bins on 0-5) of the raw estimates;
   every frame of the first `baseline_settle_s` joins it, later only frames outside an
   episode. The neutral level is its `baseline_quantile` (lower quantile); corrected =
   clamp(raw - neutral, 0, 5).
2. Motion: the 468 mesh points aligned to the face's neutral shape by Umeyama's similarity
   transform (3-D); the motion is the 95th percentile of the points' distances to it over
   the reference's inter-ocular distance. The neutral shape averages the settling frames
   and later calm frames (at most 90, then exponentially).
3. Spotting: activation = largest corrected AU (AU45 left out, and AUs 5-7 while AU45 is
   present); an episode opens at `onset_intensity`, its onset the frame after the local
   minimum before the rise; it ends below `offset_intensity`, on a gap, at the end, or at
   `max_episode_s`; reported when it spans at least 2 frames, lasted `min_duration_s` and
   its landmarks moved `min_landmark_motion`.

The arithmetic is float32 where affectd's is (AU values, thresholds, the neutral shape)
and float64 where it is (times, the alignment), so the episodes are expected to be equal.

Usage: spotting_reference.py FRAMES.jsonl  -> one JSON line per ended episode on stdout.
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque

import numpy as np

F32 = np.float32
AU_NUMBERS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 45)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER, MESH_POINTS = 33, 263, 468
CONFIG = dict(
    baseline_quantile=0.5, baseline_settle_s=2.0, onset_intensity=1.0, offset_intensity=0.5,
    min_duration_s=0.04, min_landmark_motion=0.02, micro_max_duration_s=0.5,
    micro_max_intensity=2.0, max_gap_s=0.5, max_episode_s=30.0, forget_after_s=10.0,
)
BIN_WIDTH = F32(0.01)
BINS = 501
LOOKBACK = 64
MIN_FRAMES = 2
RISE_STEP = F32(0.01)
REFERENCE_FRAMES = 90


def round_half_away(x: np.float32) -> int:
    whole = math.floor(float(x))
    return whole + 1 if float(x) - whole >= 0.5 else whole


class Baseline:
    def __init__(self):
        self.counts = np.zeros((len(AU_NUMBERS), BINS), dtype=np.int64)
        self.total = 0

    def push(self, raw: np.ndarray):
        for i, v in enumerate(raw):
            b = min(round_half_away(F32(min(max(v, F32(0)), F32(5))) / BIN_WIDTH), BINS - 1)
            self.counts[i, b] += 1
        self.total += 1

    def quantile(self, q: float) -> np.ndarray:
        rank = min(max(math.ceil(float(F32(q)) * self.total - 1e-6), 1), self.total)
        cumulative = np.cumsum(self.counts, axis=1)
        bins = np.argmax(cumulative >= rank, axis=1)
        return bins.astype(F32) * BIN_WIDTH


def similarity(src: np.ndarray, dst: np.ndarray):
    a, b = src.astype(np.float64), dst.astype(np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    covariance = cb.T @ ca / len(a)
    variance = (ca**2).sum() / len(a)
    u, s, vt = np.linalg.svd(covariance)
    signs = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[2] = -1
    rotation = u @ np.diag(signs) @ vt
    scale = (s * signs).sum() / variance
    return scale, rotation, mu_b - scale * rotation @ mu_a


def aligned(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    scale, rotation, translation = similarity(points, reference)
    return (scale * points.astype(np.float64) @ rotation.T + translation).astype(F32)


class Shape:
    def __init__(self):
        self.shape = None
        self.frames = 0

    def motion(self, points: np.ndarray):
        if self.shape is None:
            return None
        a = aligned(points[:MESH_POINTS], self.shape)
        d = lambda p, q: np.sqrt(((p - q) ** 2).sum(axis=-1, dtype=F32)).astype(F32)
        eyes = d(self.shape[RIGHT_EYE_OUTER], self.shape[LEFT_EYE_OUTER])
        moved = (d(a, self.shape) / eyes).astype(F32)
        return float(np.sort(moved)[len(moved) * 95 // 100])

    def add_neutral(self, points: np.ndarray):
        mesh = points[:MESH_POINTS]
        if self.shape is None:
            self.shape, self.frames = mesh.copy(), 1
            return
        a = aligned(mesh, self.shape)
        self.frames = min(self.frames + 1, REFERENCE_FRAMES)
        weight = F32(1.0) / F32(self.frames)
        self.shape = (self.shape + weight * (a - self.shape)).astype(F32)


def activation(corrected: np.ndarray) -> np.float32:
    blinking = corrected[AU_NUMBERS.index(45)] >= F32(1.0)
    best = F32(0.0)
    for n, v in zip(AU_NUMBERS, corrected):
        if n == 45 or (blinking and 5 <= n <= 7):
            continue
        best = max(best, v)
    return best


class Spotter:
    def __init__(self, face_id: int):
        self.face_id = face_id
        self.recent: deque = deque(maxlen=LOOKBACK)
        self.open = None
        self.saturated = True
        self.last_t = None

    def step(self, t, corrected, motion):
        c = CONFIG
        if not math.isfinite(t) or (self.last_t is not None and t <= self.last_t):
            return None
        self.last_t = t
        sample = (t, activation(corrected), corrected)
        event = None
        if self.open is None:
            if self.saturated:
                self.saturated = sample[1] >= F32(c["offset_intensity"])
            elif sample[1] >= F32(c["onset_intensity"]):
                self._open(sample, motion)
        else:
            if sample[1] < F32(c["offset_intensity"]):
                event = self.close(t, "returned")
            else:
                self._extend(sample, motion)
                if t - self.open["onset"] >= c["max_episode_s"]:
                    self.saturated = True
                    event = self.close(t, "max_episode_s")
        self.recent.append(sample)
        return event

    def end(self, t, why):
        self.saturated = False
        return self.close(t, why)

    def _open(self, sample, motion):
        recent = list(self.recent)
        first, later = len(recent), sample[1]
        while first > 0 and recent[first - 1][1] < later - RISE_STEP:
            first -= 1
            later = recent[first][1]
        if first < len(recent) and recent[first][1] < sample[1]:
            first += 1
        rise = recent[first:]
        before = recent[first - 1][2] if first >= 1 else None
        onset = rise[0][0] if rise else sample[0]
        start = before if before is not None else (rise[0][2] if rise else sample[2])
        self.open = dict(
            onset=onset, apex=sample[0], samples=[], start=start,
            peaks=[(-np.inf, onset)] * len(AU_NUMBERS), apex_activation=-np.inf, peak_motion=None,
        )
        for s in rise:
            self._add(s)
        self._extend(sample, motion)

    def _add(self, s):
        o = self.open
        o["peaks"] = [(v, s[0]) if v > p[0] else p for v, p in zip(s[2], o["peaks"])]
        if s[1] > o["apex_activation"]:
            o["apex_activation"], o["apex"] = s[1], s[0]
        o["samples"].append(s)

    def _extend(self, s, motion):
        self._add(s)
        if motion is not None:
            pm = self.open["peak_motion"]
            self.open["peak_motion"] = motion if pm is None else max(pm, motion)

    def close(self, t, why):
        c, o = CONFIG, self.open
        if o is None:
            return None
        self.open = None
        aus = []
        for i, n in enumerate(AU_NUMBERS):
            peak, peak_time = o["peaks"][i]
            if n == 45 or peak < F32(c["onset_intensity"]):
                continue
            ends = [s[0] for s in o["samples"][1:]] + [t]
            held = 0.0
            for s, end in zip(o["samples"], ends):
                if s[2][i] >= F32(0.8) * peak:
                    held += max(end - s[0], 0.0)
            aus.append(dict(au=f"AU{n:02d}", start_intensity=float(o["start"][i]),
                            peak_intensity=float(peak), peak_time=peak_time, held_s=held))
        aus.sort(key=lambda a: -a["peak_intensity"])
        duration = t - o["onset"]
        micro = duration < c["micro_max_duration_s"] and all(
            a["peak_intensity"] <= float(F32(c["micro_max_intensity"])) for a in aus)
        moved = o["peak_motion"] is None or o["peak_motion"] >= float(F32(c["min_landmark_motion"]))
        if not (len(o["samples"]) >= MIN_FRAMES and duration >= c["min_duration_s"] and moved):
            return None
        return dict(face_id=self.face_id, onset=o["onset"], apex=o["apex"], offset=max(t, o["onset"]),
                    end=why, micro_candidate=micro, peak_motion=o["peak_motion"], action_units=aus)


def spot(frames):
    c, faces, episodes = CONFIG, {}, []
    for frame in frames:
        t = frame["timestamp"]
        ids = {f["face_id"] for f in frame["faces"]}
        for fid, state in faces.items():
            if fid not in ids and t - state["last_seen"] > c["max_gap_s"]:
                episodes.append(state["spotter"].end(state["last_seen"], "face_lost"))
        faces = {k: s for k, s in faces.items() if t - s["last_seen"] <= c["forget_after_s"]}
        for f in frame["faces"]:
            units = f.get("action_units")
            if not units:
                continue
            raw = np.array([units[f"AU{n:02d}_r"] for n in AU_NUMBERS], dtype=F32)
            mesh = np.array(f["landmarks"], dtype=F32) if "landmarks" in f else None
            state = faces.setdefault(f["face_id"], dict(
                first_seen=t, last_seen=t, settled=False, baseline=Baseline(), shape=Shape(),
                spotter=Spotter(f["face_id"])))
            if t < state["last_seen"]:  # the clock went back: end and restart the spotting
                episodes.append(state["spotter"].end(state["last_seen"], "face_lost"))
                state["spotter"] = Spotter(f["face_id"])
                if not state["settled"]:
                    state["first_seen"] = t
                state["last_seen"] = t
            if t - state["last_seen"] > c["max_gap_s"]:
                episodes.append(state["spotter"].end(state["last_seen"], "face_lost"))
            state["last_seen"] = t
            state["settled"] = state["settled"] or t - state["first_seen"] >= c["baseline_settle_s"]
            if not state["settled"]:
                state["baseline"].push(raw)
                if mesh is not None:
                    state["shape"].add_neutral(mesh)
                continue
            neutral = state["baseline"].quantile(c["baseline_quantile"])
            corrected = np.clip(raw - neutral, F32(0), F32(5)).astype(F32)
            motion = state["shape"].motion(mesh) if mesh is not None else None
            episodes.append(state["spotter"].step(t, corrected, motion))
            if state["spotter"].open is None:
                state["baseline"].push(raw)
                if activation(corrected) < F32(c["offset_intensity"]) and mesh is not None:
                    state["shape"].add_neutral(mesh)
    for state in sorted(faces.items()):
        episodes.append(state[1]["spotter"].end(state[1]["last_seen"], "stream_ended"))
    return [e for e in episodes if e is not None]


def main():
    with open(sys.argv[1]) as f:
        frames = [json.loads(line) for line in f]
    frames = [fr for fr in frames if fr.get("record") is None and "faces" in fr]
    for e in spot(frames):
        print(json.dumps(e))


if __name__ == "__main__":
    main()
