"""`vidcat bench` runs the speed benchmarks of the source checkout (benchmarks/speed/); outside one it says
where they live in one line."""
from __future__ import annotations

from pathlib import Path

from vidcat.cli import info, main


def test_bench_loads_the_benchmarks_of_this_checkout():
    module = info.bench_module("recipe")
    assert Path(module.__file__).resolve() == info.source_root() / "benchmarks" / "speed" / "recipe.py"
    assert callable(module.run_bench_recipe)


def test_bench_outside_a_checkout_is_one_error_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(info, "source_root", lambda: tmp_path)
    assert main(["bench", "decode", "--repeat", "1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "vidcat: error: vidcat bench decode: the speed benchmarks live in the source tree (benchmarks/speed/ of a "
        "vidcat checkout), not in the installed package: run it from a checkout"]
