"""The one configuration: file, environment and command-line layers; clear errors."""
import pytest

from plumbing.config import DEFAULT_CONFIG, Config, ConfigError, load


def test_the_committed_file_states_the_defaults():
    assert load(DEFAULT_CONFIG, env={}) == Config()
    assert load(None, env={}) == Config()


def test_layers_file_then_environment_then_command_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[search]\npreset = "heavy"\n[trainer]\nbatch_size = 32\n[triton]\nurl = "a:1"\n')
    env = {"BLOBZERO__TRAINER__BATCH_SIZE": "64", "BLOBZERO__TRITON__URL": "b:2"}
    cfg = load(path, ["triton.url=c:3"], env=env)
    assert cfg.search.preset == "heavy" and cfg.search.build().simulations == 50
    assert cfg.trainer.batch_size == 64           # env beats file
    assert cfg.triton.url == "c:3"                # --set beats env
    assert load(None, env={"BLOBZERO_CONFIG": str(path)}).trainer.batch_size == 32


def test_round_trip_through_toml(tmp_path):
    cfg = load(None, ["table.players=5", "search.c_puct=2.0", "triton.url=host:9"], env={})
    path = tmp_path / "out.toml"
    path.write_text(cfg.to_toml())
    assert load(path, env={}) == cfg


@pytest.mark.parametrize("overrides,message", [
    (["serch.preset=light"], "unknown config section 'serch'"),
    (["search.presett=light"], "unknown config key 'search.presett'"),
    (["trainer.batch_size=lots"], "'trainer.batch_size' must be int"),
    (["table.players=9"], "'table.players' must be 3..8"),
    (["table.cards_max=20"], "'table.cards_max'"),
    (["search.preset=huge"], "'search.preset' must be one of"),
    (["triton.flavour=gpu"], "'triton.flavour'"),
    (["nodot=1"], "use section.key=value"),
])
def test_bad_keys_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load(None, overrides, env={})


def test_bad_file_and_bad_env_are_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[table\nplayers = 4")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(broken, env={})
    with pytest.raises(ConfigError, match="'metrics.selfplay_port' must be int"):
        load(None, env={"BLOBZERO__METRICS__SELFPLAY_PORT": "x"})
    with pytest.raises(ConfigError, match="BLOBZERO__SECTION__KEY"):
        load(None, env={"BLOBZERO__NOKEY": "1"})


def test_cli_reports_config_errors_without_a_traceback():
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", "selfplay", "--set", "table.players=2"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "config key 'table.players' must be 3..8" in res.stderr
    assert "Traceback" not in res.stderr
