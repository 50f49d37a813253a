"""The READMEs' untagged Python snippets, run in order against a real server: the client's
README and the "use affectd in your experiment" guide of the project's README (its PsychoPy
snippet runs in PsychoPy's own environment: tests/integration/python_client.rs)."""

from __future__ import annotations

import pytest

from conftest import REPO
from run_snippets import run


@pytest.mark.parametrize("markdown", ["clients/python/README.md", "README.md"])
def test_readme_snippets_run(markdown, explaining_server, photo, tmp_path, capsys):
    run(REPO / markdown, explaining_server.address, photo, None, tmp_path)
    assert capsys.readouterr().out, "the snippets printed nothing"
