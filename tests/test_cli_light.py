"""Reading the options is light: ``vidcat --help`` and every ``vidcat <cmd> --help`` load no torch, OpenCV or
PyAV (the CLI modules import only the config package; each command imports its implementation when it
runs), and the config package itself imports only the standard library and ``vidcat.errors``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "cv2", "av")
ROOT = Path(__file__).resolve().parents[1]

# Runs every (sub-)command's --help in one fresh interpreter and reports, per command, the heavy modules
# loaded by then (a module loaded by one command stays loaded, so the first command that loads it shows).
EVERY_HELP = """
import contextlib, io, json, sys
from vidcat.cli import build_parser, main

def commands(parser, prefix=()):
    action = next((a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"), None)
    out = [prefix]
    for name, sub in (action.choices.items() if action else ()):
        out += commands(sub, prefix + (name,))
    return out

report = {}
for cmd in commands(build_parser()):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(list(cmd) + ["--help"])
    report[" ".join(cmd) or "(none)"] = {"code": code, "usage": out.getvalue().startswith("usage: vidcat"),
                                         "heavy": sorted(m for m in HEAVY if m in sys.modules)}
print(json.dumps(report))
"""


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_every_help_loads_no_torch_opencv_or_pyav():
    r = _python("-c", f"HEAVY = {HEAVY!r}\n" + EVERY_HELP)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert {"(none)", "train", "eval", "predict", "serve", "bench decode", "bench model", "flow"} <= set(report)
    assert len(report) >= 25
    for cmd, seen in report.items():
        assert seen == {"code": 0, "usage": True, "heavy": []}, (cmd, seen)


def test_python_m_vidcat_help_imports_nothing_heavy():
    """The real entry point, with the interpreter's own import log (``-X importtime``) as the witness."""
    r = _python("-X", "importtime", "-m", "vidcat", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: vidcat"), r.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "vidcat.cli" in imported and "vidcat.config" in imported  # the log is the one we think it is
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_the_config_package_imports_only_the_standard_library_and_errors():
    r = _python("-c", "import sys; before = set(sys.modules); import vidcat.config; "
                      "print('\\n'.join(sorted(set(sys.modules) - before)))")
    assert r.returncode == 0, r.stderr
    new = set(r.stdout.split())
    ours = {m for m in new if m.split(".")[0] == "vidcat"}
    assert "vidcat.config.train" in ours and "vidcat.config.runtime" in ours
    assert ours - {m for m in ours if m.startswith("vidcat.config")} <= {"vidcat", "vidcat.errors"}
    third_party = {m.split(".")[0] for m in new - ours} - set(sys.stdlib_module_names)
    assert third_party == set(), third_party


def test_no_module_inside_vidcat_imports_the_package_itself():
    """``vidcat/__init__`` is the API on top of everything (``vidcat.train``, ...): a module inside imports what
    it needs from where it is defined (the version from ``vidcat.config``), never ``vidcat`` itself."""
    import ast

    found = []
    for path in sorted((ROOT / "vidcat").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "vidcat" for a in node.names) or \
                    isinstance(node, ast.ImportFrom) and node.module == "vidcat" and node.level == 0:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
