"""The blocking client against a real server: every RPC with Python types in and out."""

from __future__ import annotations

import csv
import io
import threading
import time
import zipfile

import grpc
import numpy as np
import pytest
from PIL import Image

import affectd
from affectd.proto import session_pb2

RATE = 256.0


def alpha_eeg(seconds: float, rate: float = RATE) -> np.ndarray:
    """(2, n) channel-major: 10 Hz alpha on both, stronger on the first."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(7)
    alpha = np.sin(2 * np.pi * 10 * t)
    return np.stack([30 * alpha, 15 * alpha]) + rng.normal(0, 2, (2, t.size))


def test_server_info_and_clock_offset(server):
    with affectd.Client(server.address) as client:
        info = client.server_info()
        assert info.proto_package == "affect.v1"
        assert info.max_message_bytes > 0
        offset, rtt = client.clock_offset(probes=4)
        # Same machine, same clock: the offset is within the round trip.
        assert 0 <= rtt < 0.5 and abs(offset) <= rtt + 0.005


def test_analyze_frame_takes_a_path_bytes_arrays_and_a_pil_image(server, photo):
    pil = Image.open(photo).convert("RGB")
    rgb = np.asarray(pil)
    with affectd.Client(server.address) as client:
        by_path = client.analyze_frame(photo)
        by_bytes = client.analyze_frame(photo.read_bytes())
        by_rgb = client.analyze_frame(rgb)
        by_bgr = client.analyze_frame(np.ascontiguousarray(rgb[:, :, ::-1]), color="BGR")
        by_pil = client.analyze_frame(pil)
    assert len(by_path.faces) == 1
    assert by_path.faces == by_bytes.faces  # (the stage timings differ from run to run)
    # The same pixels, sent raw as RGB, as BGR said so, or from PIL: the same analysis.
    assert by_rgb.faces == by_bgr.faces == by_pil.faces
    # Decoded here (PIL) or on the server (the same JPEG): the same face, to decoder rounding.
    a, b = by_path.faces[0].box, by_rgb.faces[0].box
    assert abs(a.x - b.x) < 2 and abs(a.width - b.width) < 2
    # BGR pixels declared as RGB are a different image: the colour order is not ignored.
    with affectd.Client(server.address) as client:
        swapped = client.analyze_frame(np.ascontiguousarray(rgb[:, :, ::-1]), color="RGB")
    assert swapped.faces != by_rgb.faces


def test_faces_dataframe_has_the_export_s_openface_columns_and_values(server, photo):
    with affectd.Client(server.address) as client:
        analysis = client.analyze_frame(photo)
        frame = analysis.to_dataframe(source="photo")
        assert len(frame) == 1
        with client.session(participant="columns") as session:
            session.frame(1.0, photo)
        data = client.recordings.export_bytes(session.session_id, format="csv")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = next(n for n in z.namelist() if n.endswith("faces.csv"))
        rows = list(csv.reader(io.TextIOWrapper(z.open(name), "utf-8")))
    header, row = rows[0], rows[1]
    assert list(frame.columns) == header
    exported = dict(zip(header, row))
    for column in ["AU12_r", "AU04_r", "pose_Rx", "x_0", "y_477", "happy", "face_width"]:
        text = exported[column]  # the CSV rounds: compare to its last decimal
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert frame[column].iloc[0] == pytest.approx(float(text), abs=0.5 * 10**-decimals + 1e-9), column
    assert frame["AU12_c"].iloc[0] in (0, 1)


def test_events_dataframe_has_the_export_s_event_columns(server, photo):
    from affectd import tables
    from affectd.proto import vision_pb2

    with affectd.Client(server.address) as client:
        with client.session(participant="events") as session:
            session.frame(1.0, photo)
        data = client.recordings.export_bytes(session.session_id, format="csv")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        rows = list(csv.reader(io.TextIOWrapper(z.open("expression_events.csv"), "utf-8")))
    assert rows[0] == tables.event_columns()
    assert len(rows) == 1  # one frame: no face history, so no episode
    event = vision_pb2.ExpressionEvent(
        kind=vision_pb2.ExpressionEvent.KIND_ENDED, face_id=2, onset=10.0, apex=10.38, offset=11.7,
        duration_s=1.7, end=vision_pb2.EPISODE_END_RETURNED,
        action_units=[vision_pb2.EpisodeActionUnit(
            number=12, name="AU12", start_intensity=0.4, peak_intensity=3.1, peak_time=10.38, held_s=1.2)],
    )
    started = vision_pb2.ExpressionEvent(kind=vision_pb2.ExpressionEvent.KIND_STARTED, face_id=2, onset=10.0)
    frame = tables.events_dataframe([started, event], source="s")
    assert len(frame) == 1 and list(frame.columns) == tables.event_columns()
    row = frame.iloc[0]
    assert row["AU12_peak"] == pytest.approx(3.1) and row["end"] == "returned"
    assert row["dynamics"] == "AU12 rose from 0.40 to 3.10 in 380 ms, held 1.20 s"  # as the Rust export writes it
    assert np.isnan(row["AU04_peak"]) and np.isnan(row["peak_motion"])


def test_analyze_signals_takes_channel_major_arrays(server):
    data = alpha_eeg(20)
    with affectd.Client(server.address) as client:
        result = client.analyze_signals(
            {"eeg": data}, rates=RATE, kinds="eeg", labels=["F3", "F4"], units="uV",
            first_timestamps=100.0,
        )
        # A sequence of arrays, and a 1-D array as one channel.
        one = client.analyze_signals([data[0]], rates=[RATE], kinds=["eeg"])
    assert result.windows and not result.warnings
    table = result.to_dataframe()
    assert len(table) == len(result.windows)
    assert table["start_time"].iloc[0] == pytest.approx(100.0)
    assert (table["stream"] == "eeg").all() and (table["channels"] == 2).all()
    # The alpha band dominates each channel (relative power), as synthesised.
    assert (table["alpha_F3_rel"] > 0.5).all() and (table["alpha_F4_rel"] > 0.5).all()
    assert one.windows and one.windows[0].stream_id == "s0"
    # Channel-major is what was sent: F3 carries twice F4's amplitude, four times the power.
    ratio = table["alpha_F3_abs"] / table["alpha_F4_abs"]
    assert np.allclose(ratio, 4.0, rtol=0.1)


def test_wrong_shapes_and_dtypes_raise_before_anything_is_sent():
    # Nothing listens on port 1: any attempt to send would fail with grpc.RpcError, so a
    # ValueError proves the check came first.
    client = affectd.Client("127.0.0.1:1", timeout=2)
    cases = [
        (lambda: client.analyze_signals(np.zeros((2, 3, 4)), 256, "eeg"), "arrays['s0']: expected a (channels, samples) array"),
        (lambda: client.analyze_signals({"eeg": np.zeros((2, 0))}, 256, "eeg"), "at least one channel and one sample"),
        (lambda: client.analyze_signals({"eeg": np.array([["a", "b"]])}, 256, "eeg"), "expected real numbers"),
        (lambda: client.analyze_signals({"eeg": np.zeros((2, 10))}, -1, "eeg"), "rates['eeg']: expected a positive number"),
        (lambda: client.analyze_signals({"eeg": np.zeros((2, 10))}, 256, "emg"), "kinds['eeg']: 'emg' is not one of"),
        (lambda: client.analyze_signals({"eeg": np.zeros((2, 10))}, 256, "eeg", labels=["a"]), "labels/units of stream 'eeg': expected 2 (one per channel)"),
        (lambda: client.analyze_signals({"a": np.zeros((1, 10)), "b": np.zeros((1, 10))}, [256], "eeg"), "rates: 1 values for 2 streams"),
        (lambda: client.analyze_signals({"eeg": np.zeros((1, 5_000_000))}, 256, "eeg"), "exceed one request's limit"),
        (lambda: client.analyze_frame(np.zeros((10, 10), np.uint8)), "image: expected an H x W x 3 array, got shape (10, 10)"),
        (lambda: client.analyze_frame(np.zeros((10, 10, 3), np.float32)), "image: expected dtype uint8"),
        (lambda: client.analyze_frame(np.zeros((10, 10, 3), np.uint8), color="RGBA"), "color: 'RGB' or 'BGR'"),
        (lambda: client.analyze_frame(b""), "image: the bytes are empty"),
        (lambda: client.analyze_frame(3.5), "image: expected a path, JPEG/PNG bytes"),
        (lambda: client.explain(), "explain: give exactly one of image and session_id"),
        (lambda: affectd.stream("eeg", "eeg", 256), "give labels (one per channel) or channels"),
        (lambda: affectd.stream("eeg", "eeg", 0, channels=2), "rates['eeg']: expected a positive number"),
        (lambda: affectd.stream("eeg", "eeg", 256, labels=["a", "b"], units=["uV"]), "units of stream 'eeg': 1 for 2 channels"),
        (lambda: client.recordings.export_bytes("x", format="edf"), "format: 'edf' is not one of"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert message in str(e.value), (message, str(e.value))
    client.close()


def test_session_chunks_are_checked_against_the_stream_before_sending(server):
    eeg = affectd.stream("eeg", "eeg", RATE, labels=["F3", "F4"], units="uV")
    with affectd.Client(server.address) as client:
        with client.session(participant="shapes", streams=[eeg]) as session:
            for samples, kwargs, message in [
                (np.zeros((10, 3)), {}, "samples: expected (n_samples, 2) for stream 'eeg', got shape (10, 3)"),
                (np.zeros((3, 10)), {"layout": "channels"}, "samples: expected (2, n_samples) for stream 'eeg'"),
                (np.zeros(10), {}, "samples: expected (n_samples, 2)"),
                (np.zeros((10, 2)), {"timestamps": np.arange(9.0)}, "timestamps: expected 10 (one per sample)"),
                (np.zeros((10, 2)), {"layout": "rows"}, "layout: 'samples' or 'channels'"),
            ]:
                with pytest.raises(ValueError) as e:
                    session.chunk("eeg", 0.0, samples, **kwargs)
                assert message in str(e.value)
            with pytest.raises(ValueError, match="'emg' is not one of this session's streams"):
                session.chunk("emg", 0.0, np.zeros((10, 2)))
            assert session.last_sent == 1  # only the config went out
        assert session.ended.chunks == 0


def test_recordings_list_get_export_to_a_file_and_delete(server, tmp_path):
    import pyxdf

    data = alpha_eeg(4)
    eeg = affectd.stream("eeg", "eeg", RATE, labels=["F3", "F4"], units="uV")
    with affectd.Client(server.address) as client:
        with client.session(participant="p-rec", streams=[eeg], metadata={"task": "export"}) as session:
            session.chunk("eeg", 10.0, data, layout="channels")
            session.marker(11.0, "stimulus onset")
            assert session.wait_acknowledged(timeout=30)
        sid = session.session_id
        assert sid in [s.session_id for s in client.sessions()]
        summary = client.recordings.get(sid)
        assert summary.participant == "p-rec" and summary.metadata["task"] == "export"
        assert summary.chunks == 1 and summary.markers == 1

        path = client.recordings.export(sid, tmp_path)  # a folder: the server's file name
        assert path.endswith(".xdf") and not list(tmp_path.glob("*.partial"))
        streams, _ = pyxdf.load_xdf(path)
        signal = next(s for s in streams if s["info"]["type"][0] == "EEG")
        np.testing.assert_array_equal(signal["time_series"], data.T.astype(np.float32))
        markers = next(s for s in streams if s["info"]["name"][0] == "Markers")
        assert markers["time_series"][0][0] == "stimulus onset"

        zipped = client.recordings.export(sid, tmp_path / "session.zip", format="csv")
        assert zipfile.is_zipfile(zipped)

        assert client.recordings.delete(sid) is True
        assert client.recordings.delete(sid) is False
        with pytest.raises(grpc.RpcError) as e:
            client.recordings.get(sid)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_live_session_iterator_callbacks_and_acknowledgements(server, photo):
    eeg = affectd.stream("eeg", "eeg", RATE, labels=["F3", "F4"], units="uV")
    data = alpha_eeg(6)
    seen: dict[str, int] = {}

    def count(kind):
        return lambda message: seen.__setitem__(kind, seen.get(kind, 0) + 1)

    with affectd.Client(server.address) as client:
        session = client.session(
            participant="iter", streams=[eeg], callbacks={"faces": count("faces"), "ack": count("ack")}
        )
        collected: list = []
        reader = threading.Thread(target=lambda: collected.extend(session))
        reader.start()
        with session:
            seqs = []
            for i in range(6):  # one second per chunk
                seqs.append(session.chunk("eeg", 50.0 + i, data[:, i * 256:(i + 1) * 256], layout="channels",
                                          first_sample_index=i * 256))
            seqs.append(session.frame(52.0, photo))
            seqs.append(session.marker(53.0, "probe"))
            assert seqs == list(range(2, 10))  # the config is client_seq 1
            assert session.wait_acknowledged(timeout=30)
            assert session.unacknowledged() == []
            assert session.last_acknowledged == 9
        reader.join(30)
        assert not reader.is_alive()
        assert session.ended.chunks == 6 and session.ended.frames == 1 and session.ended.markers == 1
        kinds = [r.WhichOneof("message") for r in collected]
        assert kinds[-1] == "ended"
        assert kinds.count("faces") == seen["faces"] == 1
        assert kinds.count("ack") == seen["ack"] >= 1
        assert "features" in kinds
        tables = affectd.Session.to_dataframes(collected)
        assert len(tables["faces"]) == 1 and len(tables["features"]) == kinds.count("features")
        with pytest.raises(RuntimeError, match="the session has ended"):
            session.marker(60.0, "late")

        # A session that is not recorded is never acknowledged, and says so.
        with client.session(participant="unrecorded", no_record=True) as unrecorded:
            unrecorded.marker(1.0, "x")
            with pytest.raises(RuntimeError, match="not recorded"):
                unrecorded.wait_acknowledged(1)


def test_a_broken_stream_raises_with_the_last_acknowledged_seq(own_server):
    eeg = affectd.stream("eeg", "eeg", RATE, channels=2)
    client = affectd.Client(own_server.address)
    session = client.session(participant="broken", streams=[eeg])
    for i in range(3):
        session.chunk("eeg", float(i), np.zeros((256, 2)))
    assert session.wait_acknowledged(timeout=30)
    acknowledged = session.last_acknowledged
    assert acknowledged == 4
    own_server.kill()
    deadline = time.monotonic() + 30
    with pytest.raises(affectd.SessionBroken) as e:
        while time.monotonic() < deadline:  # sends queue locally until the break is seen
            session.chunk("eeg", 10.0, np.zeros((256, 2)))
            time.sleep(0.05)
    assert e.value.last_acknowledged == acknowledged
    assert e.value.last_sent >= acknowledged
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert f"acknowledged client_seq up to {acknowledged}" in str(e.value)
    # Iterating and waiting raise the same; nothing reconnects.
    with pytest.raises(affectd.SessionBroken):
        list(session)
    with pytest.raises(affectd.SessionBroken):
        session.wait_acknowledged(1)
    with pytest.raises(affectd.SessionBroken):
        session.end()
    client.close()


def test_explain_streams_tokens_then_a_judgement(explaining_server, photo):
    with affectd.Client(explaining_server.address) as client:
        explanation = client.explain(photo, labels=["happy", "sad", "neutral"], seed=1)
        tokens = list(explanation)
        result = explanation.result
    assert tokens and "".join(tokens) == result.raw_text
    assert result.backend == "candle"
    if result.judgements:
        j = result.judgements[0]
        assert j.label in ("happy", "sad", "neutral") and j.face_id == 1
    else:
        # Reported as not parsed, never invented.
        assert result.parse_error


def test_explain_of_a_live_session_arrives_among_its_responses(explaining_server, photo):
    with affectd.Client(explaining_server.address) as client:
        with client.session(participant="explained") as session:
            session.frame(1.0, photo)
            seq = None
            events = []
            for response in session:
                if response.WhichOneof("message") == "faces":  # analysed: explain this moment
                    seq = session.explain(labels=["happy", "neutral"], max_tokens=16)
                elif response.WhichOneof("message") == "explain" and response.client_seq == seq:
                    events.append(response.explain)
                    if response.explain.HasField("result"):
                        break
                elif response.WhichOneof("message") == "warning":
                    assert response.warning.kind != session_pb2.SESSION_WARNING_KIND_EXPLAIN_FAILED, response.warning.message
    assert events and events[-1].HasField("result")
    assert sum(1 for e in events if e.HasField("token")) >= 1


def test_calibrate_and_the_fused_table_match_the_export(server, photo):
    with affectd.Client(server.address) as client:
        with client.session(participant="fused") as session:
            for i in range(4):
                session.frame(10.0 + i, photo)
            assert session.wait_acknowledged(timeout=30)
            # Nothing labelled: the server says what calibration needs; the session goes on.
            with pytest.raises(grpc.RpcError) as e:
                client.calibrate(session.session_id)
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "no labelled blocks" in e.value.details()
        responses = list(session)  # everything the session answered, in order
        fused = affectd.Session.to_dataframes(responses)["fused"]
        data = client.recordings.export_bytes(session.session_id, format="csv")
    assert len(fused) == sum(1 for r in responses if r.HasField("fused")) >= 1
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = next(n for n in z.namelist() if n.endswith("fused.csv"))
        rows = list(csv.reader(io.TextIOWrapper(z.open(name), "utf-8")))
    assert list(fused.columns) == rows[0]
    assert len(rows) - 1 == len(fused)
    assert fused["valence"].iloc[0] == pytest.approx(float(rows[1][rows[0].index("valence")]), abs=1e-3)
