"""Spec of the configs: one `Config` of shared settings, and each baseline's options in a config class
beside the baseline (as PEFT gives each tuner its own), reaching its runs, its records and its flags."""
from __future__ import annotations

import dataclasses

import pytest

from agwm_betty.cli.agwm_glue import build_parser, experiment_from_args
from agwm_betty.config import LEGACY_OPTIONS, Config, MethodConfig
from agwm_betty.methods import METHOD_CONFIGS, METHODS, get_method
from agwm_betty.methods.mixout import MixoutConfig
from agwm_betty.methods.parameter_efficient import LoRAConfig, PrefixConfig, PromptConfig
from agwm_betty.methods.soup import SoupConfig
from agwm_betty.runs.experiment import Experiment, base_record


def test_every_baseline_option_lives_in_its_method_s_config_and_none_in_the_shared_one():
    shared = set(Config.field_names())
    for name, config_class in METHOD_CONFIGS.items():
        assert issubclass(config_class, MethodConfig) and get_method(name).config_class is config_class
        own = {f.name for f in dataclasses.fields(config_class)}
        assert own and not own & shared, name
    assert {"mixout_p", "lora_r", "setfit_iterations", "soup_size"} <= {
        f.name for c in METHOD_CONFIGS.values() for f in dataclasses.fields(c)}
    assert "agwm" not in METHOD_CONFIGS and METHODS["vanilla"].config_class is None


def test_a_method_runs_on_its_own_config_else_on_its_defaults():
    mixout = get_method("mixout")
    assert mixout.options(Config()) == MixoutConfig()
    cfg = Config(methods={"mixout": MixoutConfig(mixout_p=0.3)})
    assert mixout.options(cfg).mixout_p == 0.3
    assert mixout.record_hparams(cfg)["mixout_p"] == 0.3 and mixout.record_hparams(Config())["mixout_p"] == 0.1
    with pytest.raises(ValueError, match=r"methods\['mixout'\] must be a MixoutConfig, got LoRAConfig"):
        mixout.options(Config(methods={"mixout": LoRAConfig()}))


@pytest.mark.parametrize("name, bad, message", [
    ("mixout", MixoutConfig(mixout_p=1.5), r"mixout_p must be in \[0, 1\)"),
    ("lora", LoRAConfig(lora_r=0), "lora_r must be an integer >= 1"),
    ("prompt", PromptConfig(prompt_lr=0.0), "prompt_lr must be > 0"),
])
def test_validation_checks_each_method_s_own_options(name, bad, message):
    with pytest.raises(ValueError, match=message):
        Config(methods={name: bad}).validate()


def test_a_misnamed_or_mistyped_method_config_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match=r"methods\['mixuot'\]: no method of that name has options"):
        Config(methods={"mixuot": MixoutConfig(mixout_p=0.3)}).validate()
    with pytest.raises(ValueError, match="must be that method's config"):
        Config(methods={"mixout": {"mixout_p": 0.2}}).validate()
    with pytest.raises(ValueError, match=r"methods\['mixout'\] must be a MixoutConfig, got LoRAConfig"):
        Experiment(methods=("mixout",), cfg=Config(methods={"mixout": LoRAConfig()})).validate()


def test_the_torch_free_table_of_old_flat_names_matches_the_method_configs():
    owners = {}
    for name, config_class in METHOD_CONFIGS.items():
        for f in dataclasses.fields(config_class):
            owners.setdefault(f.name, []).append(name)
    assert {k: tuple(v) for k, v in owners.items()} == LEGACY_OPTIONS


def test_a_run_has_the_same_identity_whichever_way_its_options_were_given():
    """The flat keyword of before 0.3.0, the method's config, and the default given explicitly."""
    def record(cfg):
        return base_record(Experiment(tasks=("rte",), methods=("mixout",), cfg=cfg), "rte", 0, "mixout")

    with pytest.warns(DeprecationWarning):
        flat = record(Config(mixout_p=0.2))
    assert flat == record(Config(methods={"mixout": MixoutConfig(mixout_p=0.2)}))
    assert record(Config()) == record(Config(methods={"mixout": MixoutConfig(mixout_p=0.1)}))
    assert record(Config())["run_id"] != flat["run_id"]


def test_a_replaced_config_has_a_methods_dict_of_its_own():
    cfg = Config(methods={"mixout": MixoutConfig()})
    other = dataclasses.replace(cfg, lr=1e-3)
    other.methods["soup"] = SoupConfig(soup_size=2)
    assert set(cfg.methods) == {"mixout"}


def test_the_flat_options_of_before_still_work_with_a_warning_naming_the_method_config():
    with pytest.warns(DeprecationWarning, match=r"Config.num_virtual_tokens moved to PrefixConfig"):
        cfg = Config(num_virtual_tokens=4, lr=1e-3)
    assert cfg.methods == {"prefix": PrefixConfig(num_virtual_tokens=4), "prompt": PromptConfig(num_virtual_tokens=4)}
    with pytest.warns(DeprecationWarning, match=r"Config.mixout_p moved to MixoutConfig"):
        assert Config().mixout_p == 0.1
    with pytest.warns(DeprecationWarning):
        cfg = Config(methods={"prompt": PromptConfig(num_virtual_tokens=5)})
        with pytest.raises(ValueError, match="num_virtual_tokens is ambiguous"):
            cfg.num_virtual_tokens  # noqa: B018 (the attribute access is the test)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'no_such_option'"):
        Config(no_such_option=1)
    with pytest.raises(AttributeError, match="no_such_option"):
        Config().no_such_option  # noqa: B018 (the attribute access is the test)


def test_the_cli_groups_flags_by_method_and_hands_each_method_its_config(tmp_path):
    parser = build_parser()
    titles = [group.title for group in parser._action_groups]
    assert "--methods mixout: Mixout's options (appendix D.3's search space)" in titles
    assert any(t.startswith("--methods lora:") for t in titles) and "systems" in titles
    args = parser.parse_args(["--methods", "mixout,prefix,prompt", "--mixout-p", "0.2", "--num-virtual-tokens", "4",
                              "--lr", "1e-3", "--output", str(tmp_path)])
    cfg = experiment_from_args(args).cfg
    assert cfg.lr == 1e-3
    assert cfg.methods == {"mixout": MixoutConfig(mixout_p=0.2), "prefix": PrefixConfig(num_virtual_tokens=4),
                           "prompt": PromptConfig(num_virtual_tokens=4)}
    untouched = experiment_from_args(parser.parse_args(["--output", str(tmp_path)])).cfg
    assert untouched.methods == {} and untouched == Config()
