"""affectd.aio, the same API over grpc.aio, against a real server."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

import affectd
import affectd.aio

RATE = 256.0


def run(coroutine):
    return asyncio.run(coroutine)


def test_unary_calls_match_the_blocking_client(server, photo):
    data = np.sin(2 * np.pi * 10 * np.arange(int(8 * RATE)) / RATE)[np.newaxis, :] * 20

    async def main():
        async with affectd.aio.Client(server.address) as client:
            info = await client.server_info()
            offset, rtt = await client.clock_offset(probes=3)
            frame = await client.analyze_frame(photo)
            signals = await client.analyze_signals({"eeg": data}, RATE, "eeg", labels=["Oz"])
            return info, rtt, frame, signals

    info, rtt, frame, signals = run(main())
    with affectd.Client(server.address) as client:
        assert frame.faces == client.analyze_frame(photo).faces
        blocking = client.analyze_signals({"eeg": data}, RATE, "eeg", labels=["Oz"])
    assert info.proto_package == "affect.v1" and rtt < 0.5
    assert signals.windows == blocking.windows
    assert len(frame.to_dataframe()) == 1


def test_a_session_with_async_iteration_acks_and_recordings(server, photo, tmp_path):
    eeg = affectd.stream("eeg", "eeg", RATE, labels=["F3", "F4"], units="uV")
    data = np.random.default_rng(3).normal(0, 10, (2, int(4 * RATE)))
    faces_seen = []

    async def main():
        async with affectd.aio.Client(server.address) as client:
            session = await client.session(participant="aio", streams=[eeg], callbacks={"faces": faces_seen.append})
            responses = []

            async def read():
                async for response in session:
                    responses.append(response)

            reader = asyncio.create_task(read())
            async with session:
                await session.chunk("eeg", 5.0, data, layout="channels")
                await session.frame(5.5, photo)
                await session.marker(6.0, "onset")
                assert await session.wait_acknowledged(timeout=30)
                assert session.unacknowledged() == [] and session.last_acknowledged == 4
                with pytest.raises(ValueError, match=r"expected \(n_samples, 2\)"):
                    await session.chunk("eeg", 7.0, np.zeros((4, 3)))
            await reader
            sid = session.session_id
            assert sid in [s.session_id for s in await client.sessions()]
            assert (await client.recordings.get(sid)).markers == 1
            path = await client.recordings.export(sid, tmp_path)
            deleted = await client.recordings.delete(sid)
            return session, responses, path, deleted

    session, responses, path, deleted = run(main())
    import pyxdf

    streams, _ = pyxdf.load_xdf(path)
    signal = next(s for s in streams if s["info"]["type"][0] == "EEG")
    np.testing.assert_array_equal(signal["time_series"], data.T.astype(np.float32))
    assert deleted
    kinds = [r.WhichOneof("message") for r in responses]
    assert kinds[-1] == "ended" and kinds.count("faces") == len(faces_seen) == 1
    assert session.ended.chunks == 1 and session.ended.markers == 1


def test_a_broken_async_stream_raises_with_the_last_acknowledged_seq(own_server):
    eeg = affectd.stream("eeg", "eeg", RATE, channels=1)

    async def main():
        client = affectd.aio.Client(own_server.address)
        session = await client.session(participant="broken-aio", streams=[eeg])
        await session.chunk("eeg", 0.0, np.zeros(256))
        assert await session.wait_acknowledged(timeout=30)
        own_server.kill()
        with pytest.raises(affectd.SessionBroken) as e:
            async for _ in session:
                pass
        with pytest.raises(affectd.SessionBroken):
            await session.marker(1.0, "after the break")
        await client.close()
        return e.value

    error = run(main())
    assert error.last_acknowledged == 2 and error.code == grpc.StatusCode.UNAVAILABLE


def test_async_explain_streams_tokens_then_the_result(explaining_server, photo):
    async def main():
        async with affectd.aio.Client(explaining_server.address) as client:
            explanation = client.explain(photo, labels=["happy", "neutral"], max_tokens=24)
            tokens = [t async for t in explanation]
            return tokens, explanation.result

    tokens, result = run(main())
    assert tokens and result is not None and "".join(tokens) == result.raw_text
    assert result.judgements or result.parse_error
