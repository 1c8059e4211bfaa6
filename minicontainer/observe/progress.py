"""Progress bars for a pull: one bar per layer, in a notebook or a terminal.

A pull reports progress as Docker's JSON messages (see :mod:`minicontainer.image.pull`).  The CLI
prints them as ``docker pull`` does; in a notebook, :class:`PullBars` turns the same messages into
one progress bar per layer with ``tqdm.auto``, which draws ipywidgets bars in Jupyter and text bars
elsewhere::

    from minicontainer.engine import images
    from minicontainer.observe.progress import PullBars

    with PullBars() as bars:
        images.pull("busybox", images.open_store(), progress=bars)

Any other callable that takes a dict works as ``progress`` too: that is the third way.
"""

from __future__ import annotations

from typing import Any, Self


class PullBars:
    """A ``progress`` callback that keeps one tqdm bar per layer."""

    def __init__(self, **tqdm_options: Any) -> None:
        from tqdm.auto import tqdm  # imported when a bar is wanted: never on the CLI's start-up path

        self._tqdm = tqdm
        self.options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "leave": True, **tqdm_options}
        self.bars: dict[str, Any] = {}
        self.statuses: list[str] = []  # the lines without a layer: "Digest: ...", "Status: ..."

    def __call__(self, msg: dict) -> None:
        status, layer = msg.get("status", ""), msg.get("id")
        if not layer or status.startswith("Pulling from"):
            self.statuses.append(status)
            return
        bar = self.bars.get(layer)
        if bar is None:
            bar = self.bars[layer] = self._tqdm(total=None, desc=layer, **self.options)
        detail = msg.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            bar.total = detail["total"]
            bar.n = detail.get("current", 0)
        elif status in ("Download complete", "Already exists", "Pull complete") and bar.total:
            bar.n = bar.total
        bar.set_postfix_str(status, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
