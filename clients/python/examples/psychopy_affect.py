"""An image-viewing experiment in PsychoPy's Coder style, with affectd beside it.

Each trial shows an image stimulus; a marker goes to affectd at its onset (the session's
clock is PsychoPy's core.Clock, started with the session). When a webcam is present (OpenCV),
frames stream to affectd while the stimulus is up. At the end of each trial the experiment
asks for an explanation of the last moment; at the end it exports the session to XDF.

    pip install psychopy clients/python opencv-python-headless
    python clients/python/examples/psychopy_affect.py --address 127.0.0.1:50051 img1.jpg img2.jpg

`--headless` runs the same trial loop without a window or camera (the seam the tests use):
the "screen" is a function that returns at the stimulus onset, and `--frames-from IMAGE`
stands in for the webcam.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Callable, Optional

import affectd

try:  # PsychoPy's clock when PsychoPy is installed; a monotonic clock otherwise.
    from psychopy import core

    Clock = core.Clock
    wait = core.wait
    CLOCK_NAME = "psychopy.core.Clock"
except ImportError:  # the experiment's affectd part still runs (and is tested) without it
    class Clock:  # type: ignore[no-redef]
        def __init__(self) -> None:
            self._start = time.perf_counter()

        def getTime(self) -> float:
            return time.perf_counter() - self._start

    wait = time.sleep
    CLOCK_NAME = "time.perf_counter"


def window_screen(images: list[str]) -> tuple[Callable[[int], None], Callable[[], None]]:
    """The real screen: a PsychoPy window drawing the trial's image; returns (show, close)."""
    from psychopy import visual

    win = visual.Window(size=(1024, 768), fullscr=False, color="grey", units="pix")
    stims = [visual.ImageStim(win, image=path) for path in images]

    def show(trial: int) -> None:
        stims[trial].draw()
        win.flip()  # returns at the screen refresh: the stimulus onset

    return show, win.close


def headless_screen(images: list[str]) -> tuple[Callable[[int], None], Callable[[], None]]:
    """The seam: no window; the onset is when show() returns."""
    return (lambda trial: None), (lambda: None)


def camera_source(index: int) -> Optional[Callable[[], Optional[bytes]]]:
    """JPEG frames from an OpenCV camera, or None when there is none."""
    try:
        import cv2
    except ImportError:
        return None
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        return None

    def grab() -> Optional[bytes]:
        ok, image = capture.read()
        if not ok:
            return None
        ok, jpeg = cv2.imencode(".jpg", image)
        return jpeg.tobytes() if ok else None

    return grab


def run(args: argparse.Namespace) -> int:
    images = [str(pathlib.Path(p)) for p in args.images]
    show, close = headless_screen(images) if args.headless else window_screen(images)
    if args.frames_from:
        frame_bytes = pathlib.Path(args.frames_from).read_bytes()
        grab: Optional[Callable[[], Optional[bytes]]] = lambda: frame_bytes  # noqa: E731
    elif args.headless:
        grab = None
    else:
        grab = camera_source(args.camera)
    print(f"clock: {CLOCK_NAME}; frames: {'yes' if grab else 'none (no camera)'}")

    judgements = []
    with affectd.Client(args.address) as client:
        clock = Clock()  # the session's client clock: every timestamp below is clock.getTime()
        with client.session(participant=args.participant, metadata={"experiment": "psychopy_affect"}) as session:
            client.clock_offset(clock=clock.getTime, session_id=session.session_id)
            for trial, image in enumerate(images):
                show(trial)
                onset = clock.getTime()
                session.marker(onset, f"stimulus {pathlib.Path(image).name}", duration_s=args.stimulus_s)
                analysed = 0
                while clock.getTime() - onset < args.stimulus_s:
                    if grab is not None:
                        frame = grab()
                        if frame:
                            session.frame(clock.getTime(), frame)
                            analysed += 1
                    wait(1.0 / args.fps)
                # Explain the last moment of the trial, and wait for its judgement.
                seq = session.explain(labels=args.labels, max_tokens=args.max_tokens)
                result = wait_for_explanation(session, seq)
                if result is None:
                    print(f"trial {trial + 1}: no explanation (no face analysed yet)")
                elif result.judgements:
                    j = result.judgements[0]
                    print(f"trial {trial + 1}: face {j.face_id} {j.label} ({j.confidence:.2f}): {j.rationale}")
                    judgements.append(j)
                else:
                    print(f"trial {trial + 1}: the model's answer did not parse: {result.parse_error}")
            session.wait_acknowledged(timeout=30)
        close()
        path = client.recordings.export(session.session_id, args.output, format="xdf")
    print(f"session {session.session_id}: {session.ended.markers} markers, {session.ended.frames} frames; "
          f"exported to {path}")
    return 0


def wait_for_explanation(session: affectd.Session, seq: int):
    """Reads the session's answers until the explanation `seq` ends (its result), or fails
    (a warning naming it); the other answers are passed over."""
    for response in session:
        kind = response.WhichOneof("message")
        if kind == "explain" and response.client_seq == seq and response.explain.HasField("result"):
            return response.explain.result
        if kind == "warning" and response.warning.client_seq == seq:
            return None
    return None


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="the stimulus images, one trial each")
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--participant", default="p01")
    p.add_argument("--stimulus-s", type=float, default=2.0, help="seconds each image is shown")
    p.add_argument("--fps", type=float, default=10.0, help="webcam frames per second sent")
    p.add_argument("--camera", type=int, default=0)
    p.add_argument("--labels", nargs="*", default=["happy", "sad", "surprise", "neutral"])
    p.add_argument("--max-tokens", type=int, default=0, help="0: the answer schema's budget")
    p.add_argument("--output", default=".", help="folder or file for the XDF export")
    p.add_argument("--headless", action="store_true", help="no window and no camera (tests)")
    p.add_argument("--frames-from", help="send this image as every webcam frame")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
