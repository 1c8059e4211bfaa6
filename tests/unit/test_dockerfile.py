"""The Dockerfile parser (directives, continuations, every instruction's forms, stages, errors with
their line) and the variable expansion the build applies step by step; .dockerignore patterns."""

from __future__ import annotations

import io
import tarfile

import pytest

from minicontainer.image import dockerfile as d
from minicontainer.image.context import Ignore, read_patterns, write_tar
from minicontainer.image.dockerfile import DockerfileError, expand, parse


def only_stage(text: str) -> list[d.Instruction]:
    return parse(text).stages[0].instructions


def test_the_course_dockerfile():
    df = parse("FROM alpine\nRUN apk add --update redis\nCMD [\"redis-server\"]\n")
    (stage,) = df.stages
    assert (stage.base, stage.name, stage.source.original) == ("alpine", "", "FROM alpine")
    run, cmd = stage.instructions
    assert (run.keyword, run.args, run.json, run.line) == ("RUN", ("apk add --update redis",), False, 2)
    assert (cmd.keyword, cmd.args, cmd.json, cmd.original) == ("CMD", ("redis-server",), True, 'CMD ["redis-server"]')


def test_continuations_comments_and_case():
    text = "from busybox\n\n# a comment\nrun echo a \\\n  # dropped inside\n\n  && echo b\nEnv A=1\n"
    run, env = only_stage(text)
    assert run.keyword == "RUN" and run.args == ("echo a   && echo b",) and run.line == 4
    assert run.original == "run echo a   && echo b"
    assert env.keyword == "ENV" and env.pairs == (("A", "1"),) and env.line == 8


def test_directives_escape_and_syntax():
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN echo `\n  done\nCOPY a\\b c\\\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"} and df.escape == "`"
    run, copy = df.stages[0].instructions
    assert run.args == ("echo   done",) and copy.args == ("a\\b", "c\\")
    # a directive after anything else is a comment
    assert parse("FROM busybox\n# escape=`\nRUN a \\\n b\n").escape == "\\"
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM busybox\n")


def test_every_instruction():
    text = """FROM --platform=linux/amd64 busybox:1.36 AS Base
ENV A=1 B="two words" C=three\\ words
ENV OLD the rest of the line
ARG V
ARG W=2 X=3
LABEL version="1.0" maintainer=me
COPY --chown=1:2 --chmod=755 a b /dst/
COPY --from=base ["/x y", "/z"]
ADD archive.tar.gz /opt/
WORKDIR /app
USER nobody:nogroup
EXPOSE 80 53/udp
VOLUME ["/data", "/logs"]
VOLUME /one /two
STOPSIGNAL SIGINT
SHELL ["/bin/bash", "-c"]
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/
HEALTHCHECK NONE
ONBUILD RUN echo triggered
ENTRYPOINT ["/entry"]
MAINTAINER someone
"""
    df = parse(text)
    stage = df.stages[0]
    assert (stage.name, stage.base, stage.platform) == ("base", "busybox:1.36", "linux/amd64")
    ins = {i.line: i for i in stage.instructions}
    assert ins[2].pairs == (("A", "1"), ("B", '"two words"'), ("C", "three\\ words"))
    assert ins[3].pairs == (("OLD", "the rest of the line"),)
    assert ins[4].pairs == (("V", None),) and ins[5].pairs == (("W", "2"), ("X", "3"))
    assert ins[6].pairs == (("version", '"1.0"'), ("maintainer", "me"))
    assert ins[7].flags == (("chown", "1:2"), ("chmod", "755")) and ins[7].args == ("a", "b", "/dst/")
    assert ins[8].flag("from") == "base" and ins[8].json and ins[8].args == ("/x y", "/z")
    assert ins[10].args == ("/app",) and ins[11].args == ("nobody:nogroup",)
    assert ins[12].args == ("80", "53/udp") and ins[13].args == ("/data", "/logs") and ins[14].args == ("/one", "/two")
    assert ins[16].args == ("/bin/bash", "-c") and ins[16].json
    assert ins[17].flags == (("interval", "5s"), ("retries", "3")) and ins[17].sub.args == ("curl -f http://localhost/",)
    assert ins[18].args == ("NONE",)
    assert ins[19].sub.keyword == "RUN" and ins[19].args == ("RUN echo triggered",)
    assert ins[20].json and ins[20].args == ("/entry",)
    assert ins[21].args == ("someone",)


def test_stages_meta_args_and_target():
    df = parse("ARG BASE=busybox\nFROM ${BASE} AS build\nRUN make\nFROM scratch AS final\nCOPY --from=build /a /a\n")
    assert [a.pairs for a in df.meta_args] == [(("BASE", "busybox"),)]
    assert [(s.index, s.name, s.base) for s in df.stages] == [(0, "build", "${BASE}"), (1, "final", "scratch")]
    assert df.stage_index("build") == 0 and df.stage_index("FINAL") == 1
    with pytest.raises(DockerfileError, match="failed to reach build target nope"):
        df.stage_index("nope")


@pytest.mark.parametrize("text, line, message", [
    ("FROM busybox\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("RUN true\nFROM busybox\n", 1, "the first instruction must be FROM"),
    ("FROM busybox\n\nCOPY onlyone\n", 3, "COPY requires at least two arguments"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", 2, "--mount needs BuildKit"),
    ("FROM busybox\nRUN <<EOF\necho hi\nEOF\n", 2, "heredocs (<<EOF) need BuildKit"),
    ("FROM busybox\nCOPY --bogus=1 a b\n", 2, "unknown flag: --bogus"),
    ("FROM busybox\nENV A=1 B\n", 2, "can't find = in 'B'"),
    ("FROM busybox\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM busybox\nLABEL justaname\n", 2, "LABEL names must be of the form name=value"),
    ("FROM busybox\nSHELL /bin/bash -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox AS a\nFROM busybox AS a\n", 2, "duplicate name 'a'"),
    ("FROM busybox AS 1a\n", 1, "invalid name for build stage"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("# just a comment\n", 1, "has no FROM"),
    ("FROM busybox\nHEALTHCHECK --interval=1s\n", 2, "expected NONE or CMD"),
])
def test_errors_name_the_file_the_line_and_the_instruction(text, line, message):
    with pytest.raises(DockerfileError) as caught:
        parse(text, "app/Dockerfile.dev")
    assert caught.value.line == line and message in str(caught.value)
    assert str(caught.value).startswith(f"app/Dockerfile.dev parse error line {line}: ")


def test_expand_variables_and_quotes():
    env = {"A": "1", "EMPTY": "", "SP": "x y"}
    assert expand("$A-${A}-$NOPE-end", env) == "1-1--end"
    assert expand("$A/${A}/$NOPE/x", env) == "1/1//x"
    assert expand("${EMPTY:-def} ${EMPTY-def} ${NOPE-def}", env) == "def  def"
    assert expand("${A:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${NOPE+alt}", env) == "alt  alt "
    assert expand("\"$SP\" '$SP' \\$A", env) == "x y $SP $A"
    assert expand('"a \\" b"', env) == 'a " b'
    assert expand("${NOPE:-${A}}", env) == "1"
    with pytest.raises(ValueError, match="unmatched quote"):
        expand("'open", env)
    with pytest.raises(ValueError, match="missing"):
        expand("${A", env)


def test_dockerignore_patterns():
    ignore = Ignore(read_patterns("# comment\n\n*.log\n/build/\n**/secret*\n!keep.log\ndocs/**/*.md\n"))
    assert ignore.excluded("a.log") and not ignore.excluded("dir/a.log")  # * stays in one directory
    assert not ignore.excluded("keep.log")  # the last matching pattern wins
    assert ignore.excluded("build") and ignore.excluded("build/x/y.o")  # a directory: all below
    assert ignore.excluded("secret.key") and ignore.excluded("a/b/secret.txt")
    assert ignore.excluded("docs/x.md") and ignore.excluded("docs/a/b/x.md") and not ignore.excluded("docs/x.txt")
    assert not ignore.excluded("src/main.py")


def test_the_context_tar_leaves_out_what_dockerignore_says(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\nnode_modules\n*.tmp\n")
    (tmp_path / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / "node_modules" / "x" / "big.js").write_text("x")
    (tmp_path / "a.tmp").write_text("x")
    (tmp_path / "app.py").write_text("print(1)\n")
    out = io.BytesIO()
    write_tar(str(tmp_path), out, "Dockerfile", {".dockerfile.abc": b"FROM scratch\n"})
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    # the Dockerfile and .dockerignore always travel (the daemon needs them)
    assert sorted(members) == [".dockerfile.abc", ".dockerignore", "Dockerfile", "app.py"]
    assert members["app.py"].uid == 0 and members["app.py"].uname == ""
