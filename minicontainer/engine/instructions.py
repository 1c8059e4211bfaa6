"""The config half of a Dockerfile: what ``ENV``, ``CMD``, ``EXPOSE``... write into an image's config.

Most Dockerfile instructions touch no file.  They change the *container config* an image carries
(the defaults of the next ``docker run``): ``ENV`` its ``Env``, ``CMD`` its ``Cmd``, ``EXPOSE`` its
``ExposedPorts``.  The build applies them step by step (:mod:`minicontainer.engine.build`), and
``docker commit --change 'CMD ["redis-server"]'`` applies the same instructions to a committed
container's config (:mod:`minicontainer.engine.commit`): one function for both, as in Docker.

Docker's rules kept here:

* the *shell form* of ``CMD``/``ENTRYPOINT`` runs through the image's ``SHELL`` (``/bin/sh -c``
  unless changed); the JSON form runs as is;
* an ``ENTRYPOINT`` clears a ``CMD`` inherited from the base image (it was written for another
  entrypoint), but not one set earlier in the same Dockerfile;
* ``ENV``, ``LABEL``, ``USER``, ``WORKDIR``, ``EXPOSE``, ``VOLUME`` and ``STOPSIGNAL`` expand
  ``$VARIABLES``; ``CMD``, ``ENTRYPOINT``, ``SHELL``, ``ONBUILD`` and ``HEALTHCHECK`` keep them for later;
* ``HEALTHCHECK CMD x`` is ``["CMD-SHELL", "x"]``, durations are Go's (``30s``, ``1m30s``), stored
  in nanoseconds.

Each call returns the instruction as the history's ``created_by`` shows it (``CMD ["sh" "-c" "x"]``,
Go's ``%q`` of a list).
"""

from __future__ import annotations

import json
import posixpath
import re

from minicontainer.image.dockerfile import Instruction, expand

DEFAULT_SHELL = ["/bin/sh", "-c"]
# What `docker commit --change` may say (others: "X is not a valid change command").
COMMIT_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
                  "VOLUME", "WORKDIR")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}


def go_quote(words: list[str]) -> str:
    """Go's ``%q`` of a string list, as Docker writes CMD in history: ``["sh" "-c" "x"]``."""
    return "[" + " ".join(json.dumps(w) for w in words) + "]"


def env_dict(config: dict) -> dict[str, str]:
    return dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)


def apply_to_config(config: dict, ins: Instruction, variables: dict[str, str], escape: str = "\\", *,
                    cmd_set: bool = False) -> str:
    """Apply one config-only instruction to ``config``; returns its history text (``ENV A=1``).

    ``variables`` are what ``$NAME`` means at this point; ``cmd_set``: a CMD came earlier (then an
    ENTRYPOINT leaves Cmd alone).  ValueError for a value Docker refuses."""
    k = ins.keyword

    def x(text: str) -> str:
        return expand(text, variables, escape)

    if k in ("ENV", "LABEL"):
        pairs = [(x(n), x(v or "")) for n, v in ins.pairs]
        if k == "ENV":
            config["Env"] = [f"{n}={v}" for n, v in {**env_dict(config), **dict(pairs)}.items()]
        else:
            config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
        return f"{k} " + " ".join(f"{n}={v}" for n, v in pairs)
    if k in ("CMD", "ENTRYPOINT"):
        shell = list(config.get("Shell") or DEFAULT_SHELL)
        words = list(ins.args) if ins.json else (shell + [ins.args[0]] if ins.args else [])
        config["Cmd" if k == "CMD" else "Entrypoint"] = words
        if k == "ENTRYPOINT" and not cmd_set:
            config["Cmd"] = None  # the base image's CMD was written for another entrypoint
        return f"{k} {go_quote(words)}"
    if k == "SHELL":
        config["Shell"] = list(ins.args)
        return f"SHELL [{' '.join(ins.args)}]"
    if k == "USER":
        config["User"] = x(ins.args[0])
        return f"USER {config['User']}"
    if k == "WORKDIR":
        config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", x(ins.args[0])))
        return f"WORKDIR {config['WorkingDir']}"
    if k == "STOPSIGNAL":
        from minicontainer.engine.errors import InvalidParameter
        from minicontainer.engine.service import signal_number

        value = x(ins.args[0])
        try:
            signal_number(value)
        except (ValueError, KeyError, InvalidParameter):
            raise ValueError(f"invalid signal: {value}") from None
        config["StopSignal"] = value
        return f"STOPSIGNAL {value}"
    if k == "EXPOSE":
        from minicontainer.image.archive import apply_changes  # import's --change: the same port rules

        apply_changes(config, ["EXPOSE " + " ".join(x(w) for w in ins.args)])
        return "EXPOSE " + " ".join(sorted(config["ExposedPorts"]))
    if k == "VOLUME":
        paths = [x(w) for w in ins.args]
        if not all(paths):
            raise ValueError("VOLUME specified can not be an empty string")
        config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
        return f"VOLUME [{' '.join(paths)}]"
    if k == "ONBUILD":
        config["OnBuild"] = [*(config.get("OnBuild") or []), ins.args[0]]
        return f"ONBUILD {ins.args[0]}"
    if k == "HEALTHCHECK":
        config["Healthcheck"] = healthcheck(ins)
        return f"HEALTHCHECK {json.dumps(config['Healthcheck']['Test'])}"
    raise ValueError(f"{k} is not an instruction of the config")


def healthcheck(ins: Instruction) -> dict:
    """``HEALTHCHECK [--interval=..] CMD ...`` or ``NONE`` -> the config's ``Healthcheck``."""
    if ins.args == ("NONE",):
        return {"Test": ["NONE"]}
    cmd = ins.sub
    if cmd is None:
        raise ValueError("HEALTHCHECK needs CMD or NONE")
    check: dict = {"Test": ["CMD", *cmd.args] if cmd.json else ["CMD-SHELL", cmd.args[0] if cmd.args else ""]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if ins.flag(flag) is not None:
            check[key] = duration_ns(ins.flag(flag) or "", flag)
    if ins.flag("retries") is not None:
        try:
            check["Retries"] = int(ins.flag("retries") or "")
        except ValueError:
            raise ValueError(f"--retries must be a number, not {ins.flag('retries')!r}") from None
    return check


def duration_ns(text: str, flag: str) -> int:
    """Go's durations (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"--{flag}: invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))
