"""Two small ways of showing what a container sees next to what the host sees.

* :func:`side_by_side`: two texts in two columns, the container's left, the host's right: process
  lists, hostnames, mount tables, interfaces.
* :func:`namespace_map`: which namespaces a container shares with the host, for several ways of
  running it, drawn from the real ``/proc/self/ns`` links (the same inode is the same namespace).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = ("pid", "uts", "mnt", "net", "ipc", "user", "cgroup")
# A shell line that prints every namespace link of the process that runs it: "pid pid:[4026532537]"...
NS_SCRIPT = "cd /proc/self/ns && for n in " + " ".join(KINDS) + "; do echo $n $(readlink $n); done"


class SideBySide:
    """Displays as two columns in a notebook, as plain text elsewhere."""

    def __init__(self, left: str, right: str, left_title: str, right_title: str) -> None:
        self.left, self.right, self.titles = left, right, (left_title, right_title)

    def _repr_html_(self) -> str:
        import html

        cells = "".join(f"<td style='vertical-align:top;text-align:left'><pre>{html.escape(text)}</pre></td>"
                        for text in (self.left, self.right))
        heads = "".join(f"<th style='text-align:left'>{html.escape(t)}</th>" for t in self.titles)
        return f"<table class='minicontainer-side-by-side'><tr>{heads}</tr><tr>{cells}</tr></table>"

    def __repr__(self) -> str:
        return f"--- {self.titles[0]} ---\n{self.left}\n--- {self.titles[1]} ---\n{self.right}"


def side_by_side(inside: str, host: str, inside_title: str = "in the container",
                 host_title: str = "on the host") -> SideBySide:
    return SideBySide(inside.rstrip("\n"), host.rstrip("\n"), inside_title, host_title)


def parse_ns(output: str) -> dict[str, str]:
    """``NS_SCRIPT``'s output -> {"pid": "pid:[4026532537]", ...}."""
    return dict(line.split(" ", 1) for line in output.splitlines() if " " in line)


def host_ns() -> dict[str, str]:
    """This process's namespaces: a notebook kernel runs in the host's own."""
    return {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in KINDS}


def namespace_map(runs: dict[str, dict[str, str]], host: dict[str, str] | None = None) -> Figure:
    """One column per way of running (``{"default": parse_ns(...), "--pid host": ...}``), one row per
    namespace kind: grey where the container shares the host's namespace, coloured where it has its
    own; each cell says the namespace's inode."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    host = host or host_ns()
    columns = ["host", *runs]
    fig, ax = plt.subplots(figsize=(1.9 * len(columns) + 1.5, 0.55 * len(KINDS) + 1.4), layout="constrained")
    plt.close(fig)  # shown once, as the cell's value
    for x, name in enumerate(columns):
        links = host if name == "host" else runs[name]
        for y, kind in enumerate(KINDS):
            link = links.get(kind, "?")
            shared = link == host[kind]
            colour = "#d9d9d9" if shared else "#4c9be8"
            ax.add_patch(plt.Rectangle((x - 0.45, y - 0.4), 0.9, 0.8, color=colour))
            ax.text(x, y, link.split(":", 1)[-1].strip("[]"), ha="center", va="center", fontsize=8)
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(len(KINDS) - 0.5, -0.5)
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(KINDS)), KINDS)
    ax.xaxis.tick_top()
    ax.legend(handles=[Patch(color="#d9d9d9", label="the host's namespace"),
                       Patch(color="#4c9be8", label="a namespace of its own")],
              loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False)
    ax.set_title("Namespaces by inode (/proc/self/ns): same number, same namespace", pad=28)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
