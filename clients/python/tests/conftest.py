"""Fixtures: a real affectd server per test module (or per test, for the ones that kill it).

Run by the Rust integration test `python_client::the_python_package_against_a_real_server`,
which sets AFFECTD_BIN (the built binary) and AFFECTD_TEST_CANDLE_MODEL (a GGUF); by hand:

    AFFECTD_BIN=target/debug/affectd PYTHONPATH=clients/python .venv/bin/python -m pytest clients/python/tests
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = REPO / ".testdata"


class Server:
    """`affectd serve` on an ephemeral loopback port with its own database."""

    def __init__(self, extra_env: dict[str, str] | None = None):
        binary = os.environ.get("AFFECTD_BIN")
        if not binary:
            pytest.fail("AFFECTD_BIN is not set: the path of the affectd binary to test")
        self.dir = tempfile.mkdtemp(prefix="affectd-pytest-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFFECTD_")}
        env.update(
            AFFECTD_CACHE_DIR=self.dir,
            AFFECTD_DATABASE=os.path.join(self.dir, "sessions.sqlite"),
            AFFECTD_LOG_LEVEL="warn",
            # Servers run side by side: no fixed HTTP port.
            AFFECTD_HTTP_LISTEN="127.0.0.1:0",
        )
        env.update(extra_env or {})
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.monotonic() + 120
        self.address = None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("affectd listening on "):
                self.address = line.split()[-1]
                break
            if time.monotonic() > deadline:
                break
        if self.address is None:
            self.process.kill()
            pytest.fail("affectd did not start:\n" + "\n".join(self.log))
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())

    def _drain_stdout(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass

    def kill(self) -> None:
        """kill -9: the connection breaks as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture()
def own_server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def explaining_server():
    model = os.environ.get("AFFECTD_TEST_CANDLE_MODEL")
    if not model:
        pytest.fail("AFFECTD_TEST_CANDLE_MODEL is not set: a GGUF for the candle backend")
    s = Server({"AFFECTD_CANDLE_MODEL": model})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def photo() -> pathlib.Path:
    path = TESTDATA / "single_face.jpg"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup.sh --dev")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "llm: needs a GGUF language model (the explaining_server fixture)")


def pytest_collection_modifyitems(items):
    # Tests on the explaining server need a language model: the quick tier skips them
    # (-m "not llm"), as the Rust tests under `llm::` are skipped.
    for item in items:
        if "explaining_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.llm)
