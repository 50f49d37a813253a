"""Runs a Markdown file's tested Python snippets, in order, in one namespace: the ```python
blocks between `<!-- tested-snippets:begin[ TAG] -->` and `<!-- tested-snippets:end -->`.
"127.0.0.1:50051" becomes the given server address; `photo.jpg` is copied into the working
folder. Standalone (no pytest), so that other environments (PsychoPy's) can run it:

    python run_snippets.py README.md ADDRESS PHOTO [--tag psychopy] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import tempfile

BEGIN = re.compile(r"<!-- tested-snippets:begin(?: (\w+))? -->")
END = "<!-- tested-snippets:end -->"


def snippets(markdown: pathlib.Path, tag: str | None = None) -> list[str]:
    text = markdown.read_text()
    blocks: list[str] = []
    for match in BEGIN.finditer(text):
        if match.group(1) != tag:
            continue
        body = text[match.end():text.index(END, match.end())]
        blocks += re.findall(r"```python\n(.*?)```", body, flags=re.S)
    if not blocks:
        raise SystemExit(f"{markdown}: no tested python snippets (tag {tag!r})")
    return blocks


def run(markdown: pathlib.Path, address: str, photo: pathlib.Path, tag: str | None, workdir: pathlib.Path) -> None:
    shutil.copy(photo, workdir / "photo.jpg")
    here = os.getcwd()
    os.chdir(workdir)
    try:
        namespace: dict = {"__name__": "__snippets__"}
        for i, code in enumerate(snippets(markdown, tag)):
            code = code.replace("127.0.0.1:50051", address)
            try:
                exec(compile(code, f"{markdown.name} snippet {i + 1}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{markdown} snippet {i + 1} (tag {tag!r}) failed: {e!r}\n{code}") from e
    finally:
        os.chdir(here)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("markdown", type=pathlib.Path)
    p.add_argument("address")
    p.add_argument("photo", type=pathlib.Path)
    p.add_argument("--tag")
    p.add_argument("--workdir", type=pathlib.Path)
    args = p.parse_args()
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="affectd-snippets-"))
    run(args.markdown.resolve(), args.address, args.photo.resolve(), args.tag, workdir)
    print(f"ran the snippets of {args.markdown} (tag {args.tag!r}) in {workdir}")


if __name__ == "__main__":
    main()
