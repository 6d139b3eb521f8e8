"""The one configuration: file, environment and command-line layers; clear errors."""
import dataclasses

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


def test_selfplay_can_train_without_the_play_outs_that_the_arena_keeps():
    default = load(None, env={})
    # self-play's search is [search]'s, keeping selfplay.leaf_worlds play-outs a round as labels
    assert default.selfplay_search() == default.search.build(leaf_samples=64)
    assert default.search.build().leaf_samples == 0
    cheap = load(None, ["selfplay.rollout=none"], env={})
    assert cheap.selfplay_search().rollout == "none" and cheap.search.build().rollout == "expert"
    assert dataclasses.replace(cheap.selfplay_search(), rollout="expert", leaf_samples=0) == cheap.search.build()


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
    # issue 10: every hole fault injection found is refused at start, naming the key
    (["trainer.learning_rate=inf"], "'trainer.learning_rate' must be a finite number"),
    (["trainer.learning_rate=nan"], "'trainer.learning_rate' must be a finite number"),
    (["trainer.learning_rate=5"], "'trainer.learning_rate' must be in \\(0, 1\\]"),
    (["trainer.batch_size=1000000000000"], "'trainer.batch_size' must be 1..65536"),
    (["selfplay.shard_max_seconds=inf"], "'selfplay.shard_max_seconds' must be a finite number"),
    (["triton.reconnect_timeout_s=-5"], "'triton.reconnect_timeout_s' must be in \\(0, 3600\\]"),
    (["triton.reconnect_timeout_s=nan"], "'triton.reconnect_timeout_s' must be a finite number"),
    (["triton.url=localhost:notaport"], "'triton.url' must be host:port with a port 1..65535"),
    (["triton.url=localhost"], "'triton.url' must be host:port"),
    (["triton.url=:8001"], "'triton.url' must be host:port"),
    (["triton.model_name=../evil"], "'triton.model_name'"),
    (["trainer.weight_decay=-0.1"], "'trainer.weight_decay' must be in \\[0, 1000\\]"),
    (["trainer.value_loss_weight=-1"], "'trainer.value_loss_weight' must be in \\[0, 1000\\]"),
    (["trainer.trick_loss_weight=-1"], "'trainer.trick_loss_weight' must be in \\[0, 1000\\]"),
    (["trainer.window_max=1000000000000"], "'trainer.window_max' must be <= 10000000"),
    # issue 18: the learning-rate schedule and the value-target mix
    (["trainer.learning_rate_half_life=-1"], "'trainer.learning_rate_half_life' must be >= 0"),
    (["trainer.learning_rate_min=0"], "'trainer.learning_rate_min' must be > 0"),
    (["trainer.learning_rate_min=-1e-5"], "'trainer.learning_rate_min' must be > 0"),
    (["trainer.learning_rate_half_life=1000", "trainer.learning_rate_min=0.01"],
     "'trainer.learning_rate_min' must be <= trainer.learning_rate \\(0.001\\)"),
    (["trainer.learning_rate_min=nan"], "'trainer.learning_rate_min' must be a finite number"),
    (["trainer.value_target_search=1.5"], "'trainer.value_target_search' must be in \\[0, 1\\]"),
    (["trainer.value_target_search=-0.1"], "'trainer.value_target_search' must be in \\[0, 1\\]"),
    (["trainer.human_share=0.6"], "'trainer.human_share' must be in \\[0, 0.5\\] \\(the share of each "
                                  "training batch drawn from human games; 0 = none\\), got 0.6"),
    (["trainer.human_share=-0.1"], "'trainer.human_share' must be in \\[0, 0.5\\]"),
    (["trainer.human_share=nan"], "'trainer.human_share' must be a finite number"),
    (["arena.games_in_flight=0"], "'arena.games_in_flight' must be 1..16384"),
    (["selfplay.client_id=///"], "'selfplay.client_id' must be empty"),
    (["selfplay.client_id=a b"], "'selfplay.client_id' must be empty"),
    (["selfplay.seed=-7"], "'selfplay.seed'"),
    (["selfplay.rollout=oracle"], "'selfplay.rollout' must be empty"),
    (["search.bid_rollout_weight=2"], "search: SearchConfig: bid_rollout_weight"),
    # half of 10000 rounds in flight is 5000 positions per request > max_batch_size 4096
    (["selfplay.games_in_flight=10000"], "'selfplay.games_in_flight' puts up to 5000 positions in "
                                         "one request .* over the model's max_batch_size 4096"),
    (["selfplay.games_in_flight=2048", "search.leaves_per_game=8"],
     "'selfplay.games_in_flight' puts up to 8192 positions .* use at most 1024"),
    # policy-based inference reserves rows: 1024 + 32 x 60 + 2 x 1024 > 4096; 1450 games fit
    (["selfplay.games_in_flight=2048", "search.beliefs=policy", "search.policy_inference=32"],
     "'selfplay.games_in_flight' puts up to 4992 positions .* use at most 1450$"),
    (["search.policy_inference=33"], "policy_inference must be 0..32"),
    # issue 13: the agent service
    (["agent.triton_url=triton"], "'agent.triton_url' must be empty or host:port"),
    (["agent.model=newest"], "'agent.model' must be latest or a version number"),
    (["agent.search_preset=huge"], "'agent.search_preset' must be one of"),
    (["agent.grpc_port=0"], "'agent.grpc_port' must be a port 1..65535"),
    (["agent.max_simulations=5000"], "'agent.max_simulations' must be 1..4096"),
    (["agent.request_timeout_s=inf"], "'agent.request_timeout_s' must be a finite number"),
    (["metrics.agent_port=70000"], "'metrics.agent_port' must be a port"),
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


# -- issue 10: more holes fault injection found --------------------------------------------

def test_the_batch_limit_is_the_served_models():
    from plumbing.config import max_batch_size
    from plumbing.triton_config import production_config
    assert max_batch_size() == production_config().max_batch_size == 4096
    assert load(None, ["selfplay.games_in_flight=8192"], env={}).selfplay.games_in_flight == 8192


def test_non_finite_floats_are_refused_from_toml_files_too(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[trainer]\nlearning_rate = inf\n")
    with pytest.raises(ConfigError, match="'trainer.learning_rate' must be a finite number"):
        load(path, env={})


@pytest.mark.parametrize("content,message", [
    (bytes(range(256)) * 4, "is not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 text"),
])
def test_a_binary_config_file_is_a_config_error(tmp_path, content, message):
    path = tmp_path / "blobzero.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load(path, env={})


@pytest.mark.parametrize("args,message", [
    (["--config", "BINARY"], "is not UTF-8 text"),
    (["--set", "trainer.learning_rate=inf"], "config key 'trainer.learning_rate' must be a finite number"),
    (["--set", "selfplay.client_id=///"], "config key 'selfplay.client_id'"),
    (["--set", "selfplay.games_in_flight=10000"], "config key 'selfplay.games_in_flight'"),
    (["--set", "triton.url=localhost:notaport"], "config key 'triton.url'"),
])
@pytest.mark.parametrize("command", ["selfplay", "train", "agent"])
def test_services_refuse_bad_configs_with_exit_2_and_no_traceback(tmp_path, command, args, message):
    import subprocess
    import sys
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    args = [str(binary) if a == "BINARY" else a for a in args]
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", command, *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and f"blobzero {command}:" in res.stderr
    assert "Traceback" not in res.stderr


# -- issue 20: the holes fault injection found next -------------------------------------------

@pytest.mark.parametrize("toml,message", [
    ("[storage]\ngames_dir = 5\n", "'storage.games_dir' must be str, got 5"),
    ("[storage]\nmodel_repository = 1.5\n", "'storage.model_repository' must be str"),
    ("[metrics]\nhost = 7\n", "'metrics.host' must be str"),
    ('[metrics]\nhost = "0.0.0.0:9100"\n', "'metrics.host' must be an IP address or a host name"),
    ('[metrics]\nhost = "http://prometheus"\n', "'metrics.host' must be an IP address or a host name"),
    ('[metrics]\nhost = "not a host"\n', "'metrics.host' must be an IP address or a host name"),
    ('[agent]\nhost = "-bad-"\n', "'agent.host' must be an IP address or a host name"),
])
def test_numbers_for_paths_and_bad_hosts_are_refused(tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load(path, env={})


def test_numbers_still_work_where_a_number_is_the_text(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[table]\nplayers = 4\n[agent]\nmodel = 7\n[metrics]\nhost = "::"\n')
    cfg = load(path, env={})
    assert (cfg.table.players, cfg.agent.model, cfg.metrics.host) == ("4", "7", "::")
    assert load(None, ["metrics.host=prometheus-0.monitoring.svc"], env={}).metrics.host.endswith(".svc")


def test_learned_beliefs_need_a_belief_model():
    with pytest.raises(ConfigError, match="'search.beliefs' \"learned\" needs a belief model"):
        load(None, ["search.beliefs=learned"], env={})
    with pytest.raises(ConfigError, match="'beliefs.model' must be"):
        load(None, ["beliefs.model=belief.onnx"], env={})
    assert load(None, ["search.beliefs=learned", "beliefs.model=runs/beliefs/belief.pt"],
                env={}).beliefs.model.endswith("belief.pt")
