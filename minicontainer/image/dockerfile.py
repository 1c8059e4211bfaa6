"""The Dockerfile: text in, a list of stages of instructions out (the build runs them: engine/build.py).

A Dockerfile is read in four passes, as Docker's own parser (moby's ``frontend/dockerfile/parser``)
reads it:

1. **Parser directives**: comments of the form ``# name=value`` on the very first lines, before any
   instruction, blank line or other comment.  ``escape`` (``\\`` or a backtick, for Windows paths)
   changes the line-continuation and escape character; ``syntax`` names a BuildKit frontend, which
   the classic builder ignores, as Docker's does.
2. **Logical lines**: a line ending in the escape character continues on the next one; comment
   lines (``#`` first) and blank lines inside a continued instruction are dropped.
3. **Instructions**: the first word is the instruction (any case), the rest its arguments: flags
   first (``--from=build``), then the JSON ("exec") form ``["a", "b"]`` or the plain form, split by
   the instruction's own rules (``ENV a=1 b="two words"``, ``COPY src... dst``).
4. **Stages**: each ``FROM`` starts one; ``ARG``\\ s before the first ``FROM`` are the *meta args*,
   the only variables ``FROM`` lines may use.

Variables (``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME:+alt}``) are *not* replaced here:
their values are only known while building (an ``ENV`` changes them for the lines after it), so
:func:`expand` is called by the build, step by step, with the variables of that moment.  ``RUN``
lines are never expanded by the builder: the shell in the container does it.

Every error names the line (and, through the builder, the file) and the instruction; anything the
classic builder cannot do (heredocs, ``RUN --mount``) is refused by name, never skipped.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

# Instructions, and the flags each accepts (others are an error naming the flag).
FLAGS: dict[str, tuple[str, ...]] = {
    "FROM": ("platform",), "RUN": (), "CMD": (), "ENTRYPOINT": (), "COPY": ("chown", "from", "chmod"),
    "ADD": ("chown", "chmod"), "ENV": (), "ARG": (), "WORKDIR": (), "USER": (), "EXPOSE": (), "LABEL": (),
    "VOLUME": (), "STOPSIGNAL": (), "SHELL": (), "ONBUILD": (), "MAINTAINER": (),
    "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
# What BuildKit alone can do: named, so that the error says which builder it needs.
_BUILDKIT_FLAGS = {"mount", "network", "security", "link", "parents", "exclude", "checksum", "keep-git-dir"}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?[A-Za-z_][A-Za-z0-9_]*['\"]?")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


class DockerfileError(ValueError):
    """A Dockerfile that cannot be built: names the file, the line and the instruction."""

    def __init__(self, line: int, instruction: str, message: str, file: str = "Dockerfile") -> None:
        self.line, self.instruction, self.message, self.file = line, instruction, message, file
        where = f"{instruction}: " if instruction else ""
        super().__init__(f"{file} parse error line {line}: {where}{message}")

    def in_file(self, file: str) -> DockerfileError:
        return DockerfileError(self.line, self.instruction, self.message, file)


class Instruction(NamedTuple):
    """One instruction, as written (variables not yet expanded)."""

    keyword: str  # upper case: "RUN"
    args: tuple[str, ...]  # the JSON form's strings; else the words (RUN, CMD...: the whole text, one word)
    json: bool  # written in the JSON ("exec") form
    flags: tuple[tuple[str, str], ...]  # (("from", "build"),): in the order written
    original: str  # the line as `docker build` echoes it: "RUN apk add --update redis"
    line: int  # where it starts (1-based)
    pairs: tuple[tuple[str, str | None], ...] = ()  # ENV, LABEL, ARG: (name, value or None for a bare ARG)
    sub: Instruction | None = None  # ONBUILD's instruction; HEALTHCHECK's CMD

    def flag(self, name: str, default: str | None = None) -> str | None:
        return dict(self.flags).get(name, default)


class Stage(NamedTuple):
    """A ``FROM`` and the instructions up to the next one."""

    index: int
    name: str  # ``AS name`` (lower case), or "" (then it is known by its index)
    base: str  # the image, unexpanded (may use meta ARGs): "alpine", "${BASE}", a stage's name, "scratch"
    platform: str | None
    source: Instruction  # the FROM itself
    instructions: list[Instruction]


class Dockerfile(NamedTuple):
    directives: dict[str, str]
    escape: str
    meta_args: list[Instruction]  # the ARGs before the first FROM
    stages: list[Stage]

    def stage_index(self, target: str) -> int:
        """The stage ``--target`` names (by its ``AS`` name, or by number)."""
        for stage in self.stages:
            if stage.name == target.lower():
                return stage.index
        raise DockerfileError(0, "", f"failed to reach build target {target} in Dockerfile: no stage is named so")


# --- passes 1 and 2: directives, logical lines ---------------------------------------------------------


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """The directives at the top; and the index of the first line after them."""
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip()) if line.strip().startswith("#") else None
        if m is None or m.group(1).lower() in found:
            return found, i
        name = m.group(1).lower()
        if name not in ("escape", "syntax", "check"):
            return found, i  # an ordinary comment: directives end here
        found[name] = m.group(2)
    return found, len(lines)


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """(first line number, text) of each instruction, continuations joined."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(lines[start:], start + 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue  # blank and comment lines inside a continued instruction are dropped, as Docker's
        if not pending:
            first = number
        text = raw.rstrip()
        if text.endswith(escape):  # moby: the escape character, then only blanks, ends the line
            pending.append(text[:-1])
            continue
        pending.append(text)
        out.append((first, "".join(pending).strip()))
        pending = []
    if pending:
        out.append((first, "".join(pending).strip()))  # a continuation at the end of the file
    return out


# --- pass 3: one instruction ----------------------------------------------------------------------------


def _split_flags(rest: str, keyword: str, line: int) -> tuple[tuple[tuple[str, str], ...], str]:
    flags: list[tuple[str, str]] = []
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        name, eq, value = word[2:].partition("=")
        if name in _BUILDKIT_FLAGS:
            raise DockerfileError(line, keyword, f"the flag --{name} needs BuildKit; this is the classic builder "
                                                 "(DOCKER_BUILDKIT=0), which does not have it")
        if name not in FLAGS[keyword]:
            allowed = ", ".join(f"--{f}" for f in FLAGS[keyword]) or "none"
            raise DockerfileError(line, keyword, f"unknown flag: --{name} (this instruction takes: {allowed})")
        if not eq:
            raise DockerfileError(line, keyword, f"the flag --{name} needs a value: --{name}=VALUE")
        flags.append((name, value))
        rest = after.lstrip()
    return tuple(flags), rest


def _json_list(rest: str) -> list[str] | None:
    """``["a", "b"]`` -> [a, b]; None if it is not a JSON list of strings (then it is the plain form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split at unquoted whitespace, keeping the quotes (removed later, by :func:`expand`)."""
    words: list[str] = []
    current = ""
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == escape and i + 1 < len(text) and quote != "'":
            current += c + text[i + 1]
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
            current += c
        elif c in "'\"":
            quote = c
            current += c
        elif c.isspace():
            if current:
                words.append(current)
                current = ""
        else:
            current += c
        i += 1
    if quote:
        raise ValueError(f"unmatched quote {quote} in: {text}")
    if current:
        words.append(current)
    return words


def _pairs(keyword: str, rest: str, line: int, escape: str) -> tuple[tuple[str, str | None], ...]:
    """ENV and LABEL: ``a=1 b="x y"``, or the old form ``a one value``; ARG: ``name`` or ``name=default``."""
    try:
        words = split_words(rest, escape)
    except ValueError as e:
        raise DockerfileError(line, keyword, str(e)) from None
    if not words:
        raise DockerfileError(line, keyword, f"{keyword} requires at least one argument")
    if keyword == "ARG":
        pairs: list[tuple[str, str | None]] = []
        for word in words:
            name, eq, value = word.partition("=")
            if not _NAME.match(name):
                raise DockerfileError(line, keyword, f"invalid name for a build argument: {name!r}")
            pairs.append((name, value if eq else None))
        return tuple(pairs)
    if "=" not in words[0]:  # the old form: one name, and the rest of the line is the value
        if keyword == "LABEL" or len(words) < 2:
            raise DockerfileError(line, keyword, f"{keyword} names must be of the form name=value"
                                  if keyword == "LABEL" else f"{keyword} must have two arguments")
        name, _, value = rest.partition(" ")
        return ((name, value.strip()),)
    out: list[tuple[str, str | None]] = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise DockerfileError(line, keyword, f"Syntax error - can't find = in {word!r}. Must be of the form: "
                                                 "name=value")
        if not name:
            raise DockerfileError(line, keyword, f"{keyword} names can not be blank")
        out.append((name, value))
    return tuple(out)


def parse_instruction(number: int, text: str, escape: str = "\\", *, nested: bool = False) -> Instruction:
    word, _, rest = text.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    keyword = word.upper()
    rest = rest.strip()
    if keyword not in FLAGS:
        raise DockerfileError(number, "", f"unknown instruction: {word}")  # the message names it
    if _HEREDOC.search(rest) and keyword in ("RUN", "COPY", "ADD"):
        raise DockerfileError(number, keyword, "heredocs (<<EOF) need BuildKit; the classic builder does not "
                                               "read them: write the lines with && and \\ instead")
    flags, rest = _split_flags(rest, keyword, number)
    base = Instruction(keyword, (), False, flags, text, number)
    if keyword == "ONBUILD":
        if not rest:
            raise DockerfileError(number, keyword, "ONBUILD requires at least one argument")
        sub = parse_instruction(number, rest, escape, nested=True)
        if sub.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(number, keyword, f"{sub.keyword} isn't allowed as an ONBUILD trigger")
        return base._replace(args=(rest,), sub=sub)
    if keyword in ("ENV", "LABEL", "ARG"):
        return base._replace(pairs=_pairs(keyword, rest, number, escape))
    if keyword == "HEALTHCHECK":
        kind, _, command = rest.partition(" ")
        if kind.upper() == "NONE":
            if command.strip() or flags:
                raise DockerfileError(number, keyword, "HEALTHCHECK NONE takes no other argument")
            return base._replace(args=("NONE",))
        if kind.upper() != "CMD":
            raise DockerfileError(number, keyword, "expected NONE or CMD after HEALTHCHECK and its flags")
        return base._replace(args=("CMD",), sub=parse_instruction(number, "CMD " + command.strip(), escape))
    if not rest and keyword not in ("RUN", "CMD", "ENTRYPOINT"):
        raise DockerfileError(number, keyword, f"{keyword} requires at least one argument")
    listed = _json_list(rest)
    if keyword in ("RUN", "CMD", "ENTRYPOINT"):
        if listed is not None:
            return base._replace(args=tuple(listed), json=True)
        return base._replace(args=(rest,) if rest else ())
    if keyword == "SHELL":
        if listed is None or not listed:
            raise DockerfileError(number, keyword, 'SHELL requires the arguments to be in JSON form: SHELL ["sh", "-c"]')
        return base._replace(args=tuple(listed), json=True)
    if keyword in ("COPY", "ADD", "VOLUME") and listed is not None:
        return base._replace(args=tuple(listed), json=True)
    if keyword in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"):
        return base._replace(args=(rest,))
    try:
        words = split_words(rest, escape)
    except ValueError as e:
        raise DockerfileError(number, keyword, str(e)) from None
    if keyword in ("COPY", "ADD") and len(words) < 2:
        raise DockerfileError(number, keyword, f"{keyword} requires at least two arguments, but only one was "
                                               "provided. Destination could not be determined.")
    return base._replace(args=tuple(words))


# --- pass 4: stages -------------------------------------------------------------------------------------


def _stage(index: int, ins: Instruction) -> Stage:
    words = list(ins.args)
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(ins.line, "FROM", f"invalid name for build stage: {words[2]!r}, name can't start "
                                                    "with a number or contain symbols")
    elif len(words) == 1:
        name = ""
    else:
        raise DockerfileError(ins.line, "FROM", "FROM requires either one or three arguments: FROM image [AS name]")
    return Stage(index, name, words[0], ins.flag("platform"), ins, [])


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile (:class:`DockerfileError` naming ``file`` and the line if it is not one)."""
    try:
        return _parse(text)
    except DockerfileError as e:
        raise e.in_file(file) from None


def _parse(text: str) -> Dockerfile:
    lines = text.splitlines()
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(1, "", f"invalid escape token '{escape}' does not match ` or \\")
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    for number, logical in _logical_lines(lines, start, escape):
        ins = parse_instruction(number, logical, escape)
        if ins.keyword == "FROM":
            stage = _stage(len(stages), ins)
            if stage.name and stage.name in names:
                raise DockerfileError(number, "FROM", f"duplicate name {stage.name!r}: each stage needs a name of its own")
            names.add(stage.name)
            stages.append(stage)
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword == "ARG":
            meta_args.append(ins)
        else:
            raise DockerfileError(number, ins.keyword, "no build stage in current context: the first instruction "
                                                       "must be FROM (only ARG may come before it)")
    if not stages:
        raise DockerfileError(max(len(lines), 1), "", "the Dockerfile (or its part before any error) has no FROM: "
                                                      "nothing to build")
    return Dockerfile(directives, escape, meta_args, stages)


# --- variables ------------------------------------------------------------------------------------------

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand(word: str, variables: dict[str, str], escape: str = "\\") -> str:
    """One word with its variables replaced and its quotes removed, as Docker's shell lexer does.

    ``'single'`` is literal; ``"double"`` expands; the escape character keeps the next character;
    ``$NAME``, ``${NAME}``, ``${NAME:-default}`` (if unset or empty), ``${NAME-default}`` (if unset),
    ``${NAME:+alt}`` (if set and not empty), ``${NAME+alt}`` (if set)."""
    out: list[str] = []
    i, n = 0, len(word)
    quote = ""
    while i < n:
        c = word[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                out.append(c)
            i += 1
        elif c == escape and i + 1 < n:
            nxt = word[i + 1]
            if quote == '"' and nxt not in ('"', "$", escape):
                out.append(c)  # inside double quotes the escape only escapes these
            out.append(nxt)
            i += 2
        elif c == "'" and not quote:
            quote = "'"
            i += 1
        elif c == '"':
            quote = "" if quote else '"'
            i += 1
        elif c == "$" and i + 1 < n:
            value, i = _variable(word, i + 1, variables, escape)
            out.append(value)
        else:
            out.append(c)
            i += 1
    if quote:
        raise ValueError(f"unmatched quote {quote} in: {word}")
    return "".join(out)


def _variable(word: str, i: int, variables: dict[str, str], escape: str) -> tuple[str, int]:
    """After a ``$`` at ``i - 1``: the value and where the text goes on."""
    if word[i] != "{":
        m = _VAR.match(word, i)
        if not m:
            return "$", i  # a lone $ stays
        return variables.get(m.group(0), ""), m.end()
    close = _matching_brace(word, i)
    inner = word[i + 1:close]
    m = _VAR.match(inner)
    if not m:
        raise ValueError(f"bad substitution: ${{{inner}}}")
    name, op = m.group(0), inner[m.end():]
    value = variables.get(name)
    if not op:
        return value or "", close + 1
    for marker in (":-", ":+", "-", "+"):
        if op.startswith(marker):
            other = expand(op[len(marker):], variables, escape)
            is_set = value is not None and (value != "" or not marker.startswith(":"))
            if marker.endswith("-"):
                return (value if is_set else other) or "", close + 1
            return (other if is_set else ""), close + 1
    raise ValueError(f"unsupported modifier in ${{{inner}}} (known: :-, -, :+, +)")


def _matching_brace(word: str, i: int) -> int:
    depth = 0
    for j in range(i, len(word)):
        if word[j] == "{":
            depth += 1
        elif word[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"missing '}}' in: {word}")
