"""The command line: the demo and the core benchmark run for real through ``blobzero``."""
import json
import subprocess
import sys

BLOBZERO = [sys.executable, "-m", "blobzero.cli"]


def run(*args, check=True):
    return subprocess.run([*BLOBZERO, *args], capture_output=True, text=True, check=check,
                          timeout=300)


def test_demo_prints_a_score_table():
    out = run("demo", "--rounds", "200").stdout
    assert "200 rounds, 4 players, 5 cards each" in out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[1] for r in rows] == ["greedy", "greedy", "random", "random"]
    means = [float(r[2]) for r in rows]
    assert all(0 <= m <= 15 for m in means)
    assert min(means[:2]) > max(means[2:]), "the greedy baseline should beat random play"


def test_demo_rejects_bad_arguments_clearly():
    res = run("demo", "--players", "greedy,nobody,random", check=False)
    assert res.returncode == 2 and "unknown player" in res.stderr
    res = run("demo", "--players", "random,random", check=False)
    assert res.returncode == 2 and "3..8 players" in res.stderr
    res = run("demo", "--cards", "14", check=False)
    assert res.returncode == 2 and "--cards must be 1..13" in res.stderr


def test_bench_core_prints_one_json_object():
    out = run("bench", "core", "--quick").stdout.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert result["benchmark"] == "core"
    for key in ("random_rounds_per_s", "encode_us", "determinize_us", "copy_us"):
        assert result[key] > 0
    assert result["machine"]["cpus"] >= 1


def test_bench_decision_prices_each_part_of_the_search():
    (line,) = run("bench", "decision", "--quick").stdout.strip().splitlines()
    result = json.loads(line)
    variants = result["variants"]
    assert list(variants) == ["plain", "playouts", "inference", "default", "world", "blend"]
    for v in variants.values():
        assert v["cpu_ms_per_decision"] > 0 and 900 < v["evaluations_per_round"] < 1200
    # play-outs and inference cost search CPU, never network evaluations
    assert variants["playouts"]["cpu_vs_plain"] > 1.5
    assert variants["inference"]["cpu_ms_per_decision"] > variants["playouts"]["cpu_ms_per_decision"]
    # the blend pays for its play-outs and for the world model beside them
    assert variants["blend"]["cpu_ms_per_decision"] > variants["default"]["cpu_ms_per_decision"]


def test_publish_by_hand_and_reject_a_truncated_model(tmp_path):
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", tmp_path / "m.onnx", seed=1)
    repo = tmp_path / "repo"
    res = run("publish", str(onnx), "--set", f"storage.model_repository={repo}")
    assert "version 1" in res.stdout and (repo / "blobnet" / "1" / "model.onnx").is_file()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx.read_bytes()[:1000])
    res = run("publish", str(broken), "--set", f"storage.model_repository={repo}", check=False)
    assert res.returncode == 1 and "blobzero publish:" in res.stderr
    assert sorted(p.name for p in (repo / "blobnet").iterdir() if p.name.isdigit()) == ["1"]
