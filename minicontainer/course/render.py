"""Run a notebook top to bottom, as a learner would, and write it as a web page that opens offline.

``make demo`` runs notebook 1 this way, and the tests run every notebook so.  Two libraries do the
work: **nbclient** starts a kernel and executes each cell in order (stopping at the first error, as a
learner who hit it would), and **nbconvert** turns the executed notebook into HTML.

A page with widgets (the pull's progress bars, the sliders) needs JavaScript to draw them: nbconvert
would fetch it from a CDN.  Here it comes from files next to the page instead, ``widgets/require.js``
and ``widgets/embed-amd.js`` (npm's ``requirejs`` and ``@jupyter-widgets/html-manager``, which the
Makefile unpacks into the venv), so the page opens on a machine with no network, as in a classroom.

    python -m minicontainer.course.render notebooks/01-hello-world.ipynb build/notebooks
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

KERNEL = "minicontainer"  # the kernel spec `make setup` installs into the venv (its own python)
WIDGET_FILES = ("require.js", "embed-amd.js")
TEMPLATES = Path(__file__).parent / "templates"


def widgets_source() -> Path:
    """Where the Makefile put the widget renderer: <venv>/share/minicontainer/widgets."""
    return Path(sys.prefix) / "share" / "minicontainer" / "widgets"


def execute(path: Path, *, timeout: int = 180, kernel: str = KERNEL):
    """The notebook at ``path`` executed in its own directory, and the first error (None if none).

    At an error the execution stops, as it would for a learner; the notebook then holds the outputs
    up to it and the error itself, which is worth looking at too."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        return nb, e
    return nb, None


def to_html(nb, out_dir: Path, name: str) -> Path:
    """Write ``name``.html into ``out_dir``, with the widget renderer beside it (copied once)."""
    from nbconvert import HTMLExporter

    source = widgets_source()
    missing = [f for f in WIDGET_FILES if not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(f"open {source / missing[0]}: no such file: the widget renderer is installed "
                                "by `make setup` (npm's @jupyter-widgets/html-manager and requirejs)")
    (out_dir / "widgets").mkdir(parents=True, exist_ok=True)
    for f in WIDGET_FILES:
        target = out_dir / "widgets" / f
        if not target.exists() or target.stat().st_size != (source / f).stat().st_size:
            shutil.copyfile(source / f, target)
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            require_js_url="widgets/require.js", widget_renderer_url="widgets/embed-amd.js")
    body, _ = exporter.from_notebook_node(nb)
    page = out_dir / f"{name}.html"
    page.write_text(body, encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minicontainer.course.render",
                                description="Execute notebooks and write them as offline HTML pages.")
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("out_dir", type=Path, help="where the .html pages (and their widgets/ folder) go")
    p.add_argument("--timeout", type=int, default=180, help="seconds a cell may take")
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import nbformat

    failed = 0
    for path in args.notebooks:
        print(f"executing {path} ...", flush=True)
        nb, error = execute(path, timeout=args.timeout)
        nbformat.write(nb, args.out_dir / path.name)
        page = to_html(nb, args.out_dir, path.stem)
        if error is not None:
            failed += 1
            print(f"{path}: a cell failed (the page shows where):\n{error}", file=sys.stderr)
        print(f"wrote {page} (open it in a browser: file://{os.path.abspath(page)})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
