"""The docs tell the truth: python snippets run, command lines name real scripts and flags, code
paths exist, and the import layering that docs/code_map.md describes holds."""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(f"docs/{name}" for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
FENCE = re.compile(r"(?P<marker><!-- no-run: (?P<reason>[^>]+?) -->\s*\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```",
                   re.S | re.M)
# Read-only folders a snippet may use by relative path; it runs in a temporary folder with links to them.
SNIPPET_INPUTS = ("configs", "hyper_config", "distill_config", "tests")


def blocks(langs: tuple[str, ...]) -> list[tuple[str, int, str, str | None]]:
    """(file, line, body, no-run reason) of every fenced block whose language is in ``langs``."""
    found = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        for m in FENCE.finditer(text):
            if m.group("lang") in langs:
                line = text.count("\n", 0, m.start("body"))
                found.append((doc, line, m.group("body"), m.group("reason")))
    return found


PYTHON = blocks(("python",))
SHELL = blocks(("bash", "shell", "sh"))


# -- python snippets --------------------------------------------------------------------------------
@pytest.mark.parametrize("doc, line, body, reason", PYTHON, ids=[f"{d}:{n}" for d, n, _, _ in PYTHON])
def test_python_snippet_runs(doc, line, body, reason, tmp_path, monkeypatch):
    code = compile(body, f"{doc}:{line}", "exec")
    if reason:
        for node in ast.parse(body).body:             # a no-run snippet still imports what exists
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([node], []), f"{doc}:{line}", "exec"), {})
        pytest.skip(f"no-run: {reason}")
    for name in SNIPPET_INPUTS:
        os.symlink(os.path.join(ROOT, name), tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exec(code, {"__name__": "__docs__"})


def test_no_run_list_stays_short():
    marked = [(doc, line) for doc, line, _, reason in PYTHON + SHELL if reason]
    assert len(marked) <= 2, marked


# -- command lines ----------------------------------------------------------------------------------
class _Captured(BaseException):
    """Raised by the patched ``parse_args`` to hand the script's parser back (BaseException:
    no ``except Exception`` in an entry point swallows it)."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def script_parser(script: str) -> argparse.ArgumentParser:
    """The argparse parser ``script``'s ``main`` builds (captured at its ``parse_args`` call; cached)."""
    if script not in _PARSERS:
        name = "_docs_" + re.sub(r"\W", "_", script)
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, script))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        def capture(self, *args, **kwargs):
            raise _Captured(self)

        original = argparse.ArgumentParser.parse_args
        argparse.ArgumentParser.parse_args = capture
        try:
            module.main([])
        except _Captured as captured:
            _PARSERS[script] = captured.parser
        finally:
            argparse.ArgumentParser.parse_args = original
    return _PARSERS[script]


def fill_placeholders(text: str) -> str:
    """Give the README's ``<...>`` placeholders a value: ``<1 or 2>`` -> 1, ``<_global>`` -> _global,
    ``<-r what>`` -> ``-r X``, anything else -> X."""
    def value(m):
        inner = m.group(1)
        if " or " in inner:
            return inner.split(" or ")[0]
        if inner.startswith("_"):
            return inner
        if inner.startswith("-"):
            return inner.split()[0] + " X"
        return "X"
    return re.sub(r"<([^<>\n]+)>", value, text)


def logical_lines(body: str) -> list[str]:
    """Shell lines with continuations joined, multi-line quoted strings kept whole, heredocs dropped."""
    lines, pending, heredoc = [], "", None
    for raw in body.replace("\\\n", " ").splitlines():
        if heredoc:
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        pending = f"{pending}\n{raw}" if pending else raw
        try:
            shlex.split(pending, comments=True)
        except ValueError:                              # an open quote: the string goes on
            continue
        here = re.search(r"<<\s*'?(\w+)'?", pending)
        heredoc = here.group(1) if here else None
        lines.append(pending)
        pending = ""
    return lines


def commands(body: str) -> list[list[str]]:
    """Argument lists of the ``python <script>.py ...`` lines of a shell block, variables expanded."""
    variables, found = {}, []
    for line in logical_lines(fill_placeholders(body)):
        line = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), line)
        for part in line.split(";"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "export":
                words = words[1:]
            while words and re.fullmatch(r"\w+=.*", words[0], re.S):
                name, value = words.pop(0).split("=", 1)
                variables[name] = value
            if len(words) > 1 and words[0] == "python" and words[1].endswith(".py"):
                found.append(words[1:])
    return found


COMMANDS = [(doc, line, cmd) for doc, line, body, _ in SHELL for cmd in commands(body)]


def test_the_documented_commands_are_found():
    scripts = {cmd[0] for _, _, cmd in COMMANDS}
    assert {"train.py", "train_distill.py", "evaluate.py", "vis_attn.py", "deployment/deployment_pose3d.py",
            "deployment/infer_wild.py", "tools/convert_h36m_mixste_style.py"} <= scripts


@pytest.mark.parametrize("doc, line, argv", COMMANDS, ids=[f"{d}:{n}:{c[0]}" for d, n, c in COMMANDS])
def test_command_names_a_script_and_its_flags(doc, line, argv):
    script, args = argv[0], argv[1:]
    assert os.path.isfile(os.path.join(ROOT, script)), f"{doc}:{line}: no script {script}"
    try:
        script_parser(script).parse_args(args)
    except (SystemExit, Exception) as err:
        pytest.fail(f"{doc}:{line}: {script} does not accept {args}: {err}")
    for arg in args if doc == "README.md" else []:      # the seed's commands name shipped files only
        if arg.endswith(".yaml") and arg.split("/")[0] in ("configs", "hyper_config", "distill_config"):
            assert os.path.isfile(os.path.join(ROOT, arg)), f"{doc}:{line}: no file {arg}"


def test_placeholders_and_variables_are_filled():
    assert fill_placeholders("a<_small><_global>.yaml <1 or 2> <-r path to resume> <file>") == \
        "a_small_global.yaml 1 -r X X"
    body = 'S="--config c.yaml \\\n  --set a=1"\nQ="$S\n  --set b=2"\npython t.py $Q -c out  # note\n'
    assert commands(body) == [["t.py", "--config", "c.yaml", "--set", "a=1", "--set", "b=2", "-c", "out"]]
    assert commands("OMP_NUM_THREADS=1 python - <<'EOF'\npython x.py\nEOF\npython y.py --v\n") == [["y.py", "--v"]]


# -- names of code in the docs --------------------------------------------------------------------
def code_references() -> list[tuple[str, str]]:
    """(doc, reference) for every ``lib/...py`` path and ``lib.x.y`` dotted name in the docs."""
    found = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        found += [(doc, path) for path in re.findall(r"\b((?:lib|tools|deployment)/[\w/]+\.py)\b", text)]
        found += [(doc, name) for name in re.findall(r"\blib(?:\.\w+)+", text)]
    return sorted(set(found))


def resolves(name: str) -> bool:
    """``lib.a.b`` is a module, or an attribute of the longest importable prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        with contextlib.suppress(ImportError):
            obj = importlib.import_module(".".join(parts[:cut]))
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def test_code_named_in_the_docs_exists():
    missing = [(doc, ref) for doc, ref in code_references()
               if not (os.path.isfile(os.path.join(ROOT, ref)) if "/" in ref else resolves(ref))]
    assert not missing, missing


# -- import layering (docs/code_map.md) ---------------------------------------------------------------
# What each part of lib/ may import from lib/ (itself included).
ALLOWED = {
    "errors": set(),
    "io": {"errors"},
    "data": {"errors", "io", "data"},
    "config": {"errors", "io", "data", "config"},
    "model": {"errors", "io", "data", "model"},
    "engine": {"errors", "io", "data", "config", "model", "engine"},
    "inference": {"errors", "io", "data", "config", "model", "inference"},
    "vis": {"errors", "io", "data", "config", "model", "engine", "vis"},
}


def lib_imports(path: str) -> set[str]:
    """The parts of lib/ (``data``, ``engine``, ...) that the file at ``path`` imports, anywhere in it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {f"{node.module}.{alias.name}" if node.module == "lib" else node.module for alias in node.names}
    return {name.split(".")[1] for name in names if name.startswith("lib.")}


def lib_files():
    for folder, _, files in os.walk(os.path.join(ROOT, "lib")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                part = os.path.relpath(path, os.path.join(ROOT, "lib")).split(os.sep)[0].removesuffix(".py")
                yield part, path


def test_import_layering():
    wrong = []
    for part, path in lib_files():
        if part == "__init__":
            continue
        assert part in ALLOWED, f"{path}: a new part of lib/; add it to ALLOWED and docs/code_map.md"
        wrong += [f"{os.path.relpath(path, ROOT)} imports lib.{p}" for p in lib_imports(path) - ALLOWED[part]]
    assert not wrong, wrong


def test_layering_check_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from lib.engine.trainer import Trainer\nimport lib.vis.attention\nfrom lib import io\n")
    assert lib_imports(str(path)) == {"engine", "vis", "io"}


def test_dstformer_docstring_example_holds():
    """The shape example in DSTformer's docstring is what the model returns."""
    import doctest

    import lib.model.dstformer
    result = doctest.testmod(lib.model.dstformer)
    assert result.attempted >= 3 and result.failed == 0
