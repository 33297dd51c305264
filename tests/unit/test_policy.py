"""The hub's group policy file: file:line errors, unions of groups, refusals naming the rule."""

from __future__ import annotations

import pytest

from codespace.cli import main
from codespace.policy import (
    POLICY_ENV,
    Effective,
    Policy,
    PolicyError,
    PolicyRefused,
    gpu_amount,
    load_policy,
    parse_policy,
    read_policy,
)
from codespace.spec.errors import SpecError
from codespace.spec.model import GpuRequest

POLICY = """\
default:
  profiles: [cpu]
  maxCodespaces: 2
  gpus: 0
  cpu: 2
  memory: 4Gi
  datasets: []
  jobBackends: [local]
groups:
  students:
    maxCodespaces: 1
    datasets: [mnist]
  gpu-team:
    profiles: [cpu, gpu-a100]
    gpus: 1
    cpu: 500m
    datasets: [imagenet]
  staff:
    profiles: "*"
    maxCodespaces: "*"
    memory: 16Gi
"""


def effective(*groups: str, text: str = POLICY) -> Effective:
    return parse_policy(text, "policy.yaml").for_groups(groups)


def errors(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    assert isinstance(caught.value, SpecError)
    return [str(diagnostic) for diagnostic in caught.value.diagnostics]


def refusal(check, *args) -> PolicyRefused:
    with pytest.raises(PolicyRefused) as caught:
        check(*args)
    return caught.value


# ------------------------------------------------------------------------- the file


def test_an_unknown_key_is_reported_at_its_line_with_a_suggestion():
    text = "default:\n  gpus: 1\ngroups:\n  students:\n    maxCodespace: 1\n"
    assert errors(text) == [
        "policy.yaml:5:5: groups.students.maxCodespace: unknown key; did you mean 'maxCodespaces'?"
    ]
    assert errors("defaults:\n  gpus: 1\n") == [
        "policy.yaml:1:1: defaults: unknown key; did you mean 'default'?"
    ]


def test_bad_values_are_reported_where_they_were_written():
    text = "default:\n  memory: 4 gigs\n  cpu: lots\ngroups:\n  a:\n    gpus: -1\n"
    assert errors(text) == [
        "policy.yaml:2:11: default.memory: '4 gigs' has an unknown unit 'gigs'",
        "policy.yaml:3:8: default.cpu: 'lots' is not a CPU quantity such as 2 or '500m'",
        'policy.yaml:6:11: groups.a.gpus: must be a number >= 0, or "*" for no limit (got -1)',
    ]
    (message,) = errors("default:\n  maxCodespaces: 1.5\n")
    assert message.startswith("policy.yaml:2:18: default.maxCodespaces: must be a whole number")
    (message,) = errors("default:\n  profiles: [cpu, 3]\n")
    assert message.startswith("policy.yaml:2:13: default.profiles: every name must be")
    (message,) = errors("groups:\n  a:\n    gpus:\n")  # null: leave the key out instead
    assert "groups.a.gpus: no value" in message


def test_a_file_of_the_wrong_shape_or_bad_yaml_says_so():
    (message,) = errors("- default\n")
    assert message.startswith("policy.yaml:1:1: a policy file is a mapping")
    assert errors("groups: [students]\n") == [
        "policy.yaml:1:9: groups: must be a mapping of group names to rules"
    ]
    (message,) = errors("default:\n  gpus: [1\n")
    assert message.startswith("policy.yaml:") and "YAML syntax error" in message


def test_quantities_are_read_as_cores_and_bytes():
    policy = parse_policy("default:\n  cpu: 500m\n  memory: 1.5Gi\n", "p.yaml")
    assert policy.rules.default.cpu == 0.5
    assert policy.rules.default.memory.bytes == 3 * 2**29
    assert policy.rules.default.memory.text == "1.5Gi"


def test_an_empty_file_allows_everything_and_a_missing_one_is_an_error(tmp_path):
    anyone = parse_policy("", "policy.yaml").for_groups(["students"])
    anyone.check_count(100)
    anyone.check_gpus(8, 8)
    anyone.check_profile("gpu-a100")
    anyone.check_resources(64, 2**40)
    assert anyone.allowed_profiles(["cpu", "gpu"]) == ["cpu", "gpu"]
    assert Policy().for_groups([]) == Effective()
    empty_sections = parse_policy("default:\ngroups:\n  students:\n", "p.yaml")
    empty_sections.for_groups(["students"]).check_count(100)

    missing = tmp_path / "policy.yaml"
    with pytest.raises(PolicyError, match="policy file not found") as caught:
        load_policy(missing)
    assert str(caught.value) == f"{missing}: policy file not found"
    missing.write_text("default:\n  gpus: 1\n")
    assert load_policy(missing).for_groups([]).gpus.value == 1


# ------------------------------------------------------------------------- union


def test_a_group_takes_the_defaults_value_for_what_it_leaves_out():
    students = effective("students")
    assert students.maxCodespaces.value == 1
    assert students.maxCodespaces.group == "students"
    assert students.profiles.value == ("cpu",)
    assert students.profiles.group == "students"  # the group that inherited it
    assert students.memory.value.text == "4Gi"


def test_a_user_in_two_groups_gets_the_union_with_the_winning_group():
    both = effective("students", "gpu-team")
    assert both.profiles.value == ("cpu", "gpu-a100")  # default's [cpu] via students, + gpu-team
    assert both.datasets.value == ("mnist", "imagenet")
    assert both.datasets.sources == ("students", "gpu-team")
    assert (both.gpus.value, both.gpus.group) == (1, "gpu-team")
    assert (both.maxCodespaces.value, both.maxCodespaces.group) == (2, "gpu-team")  # max(1, 2)
    assert (both.cpu.value, both.cpu.group) == (2, "students")  # 2 beats gpu-team's 500m
    assert both.groups == ("students", "gpu-team")  # the file's order, not the user's


def test_star_absorbs_lists_and_limits():
    staff = effective("students", "staff")
    assert staff.profiles.value is None and staff.profiles.group == "staff"
    assert staff.maxCodespaces.value is None and staff.maxCodespaces.group == "staff"
    staff.check_count(50)
    staff.check_profile("anything")
    # a key the default leaves out has no limit, and that beats a group's limit too
    text = "default:\n  gpus: 0\ngroups:\n  a:\n    maxCodespaces: 1\n  b:\n    gpus: 1\n"
    assert effective("a", "b", text=text).maxCodespaces.value is None


def test_unlisted_groups_are_ignored_and_get_the_default():
    nobody = effective("alumni", "visitors")
    assert nobody.groups == ()
    assert nobody.summary()["maxCodespaces"] == {
        "value": 2,
        "group": "default",
        "groups": ["default"],
    }
    assert effective("alumni", "students").maxCodespaces.value == 1


# ------------------------------------------------------------------------- refusals


def test_refusals_name_the_rule_and_the_group():
    students = effective("students")
    refused = refusal(students.check_count, 1)
    assert str(refused) == (
        'policy: group "students" allows at most 1 running codespace (maxCodespaces); '
        "you have 1 running"
    )
    assert (refused.rule, refused.group) == ("maxCodespaces", "students")

    refused = refusal(effective("gpu-team").check_profile, "gpu-h100")
    assert str(refused) == (
        'policy: profile "gpu-h100" is not allowed for your groups (gpu-team); '
        "allowed: cpu, gpu-a100 (profiles)"
    )
    assert (refused.rule, refused.group) == ("profiles", "gpu-team")


def test_refusals_from_the_default_say_default_policy():
    nobody = effective()
    refused = refusal(nobody.check_profile, "gpu-a100")
    assert str(refused) == (
        'policy: profile "gpu-a100" is not allowed by the default policy; allowed: cpu (profiles)'
    )
    assert refused.group == "default"
    assert str(refusal(nobody.check_gpus, 0, 1)) == (
        "policy: the default policy allows no GPUs (gpus); you asked for 1"
    )
    refused = refusal(nobody.check_datasets, ["mnist", "imagenet"])
    assert str(refused).startswith('policy: datasets "mnist", "imagenet" are not allowed')
    assert str(refused).endswith("allowed: none (datasets)")
    refused = refusal(nobody.check_job_backend, "slurm")
    assert (refused.rule, str(refused).endswith("allowed: local (jobBackends)")) == (
        "jobBackends",
        True,
    )
    nobody.check_deploy_backend("anything")  # the default leaves deployBackends out


def test_count_limits_at_the_boundary():
    nobody = effective()
    nobody.check_count(0)
    nobody.check_count(1)
    assert "at most 2 running codespaces" in str(refusal(nobody.check_count, 2))
    none = effective(text="default:\n  maxCodespaces: 0\n")
    assert "allows no codespaces" in str(refusal(none.check_count, 0))


def test_gpu_totals_allow_fractions_up_to_the_limit():
    team = effective("gpu-team")  # gpus: 1
    team.check_gpus(0.5, 0.5)
    team.check_gpus(0.1 + 0.2, 0.7)  # float error does not refuse an exact fit
    team.check_gpus(1, 0)  # asking for none is always fine
    refused = refusal(team.check_gpus, 0.5, 1)
    assert str(refused) == (
        'policy: group "gpu-team" allows at most 1 GPUs in total (gpus); '
        "you use 0.5 and asked for 1"
    )
    assert refused.rule == "gpus"


def test_cpu_and_memory_are_ceilings_per_codespace():
    students = effective("students")  # default: cpu 2, memory 4Gi
    students.check_resources(2, 4 * 2**30)
    students.check_resources(None, None)
    assert str(refusal(students.check_resources, 2.5, None)) == (
        'policy: group "students" allows at most 2 CPU cores per codespace (cpu); you asked for 2.5'
    )
    refused = refusal(students.check_resources, None, 8 * 2**30)
    assert str(refused) == (
        'policy: group "students" allows at most 4Gi of memory per codespace (memory); '
        "you asked for 8Gi"
    )
    effective("staff").check_resources(None, 16 * 2**30)


# ------------------------------------------------------------------------- form, JSON


def test_the_spawn_form_offers_only_allowed_profiles_and_datasets():
    assert effective("students").allowed_profiles(["gpu-a100", "cpu", "big"]) == ["cpu"]
    assert effective("staff").allowed_profiles(["gpu-a100", "cpu"]) == ["gpu-a100", "cpu"]
    assert effective("students").allowed_datasets(["imagenet", "mnist"]) == ["mnist"]
    effective("students").check_profile(None)  # a hub without profiles: nothing to check


def test_the_effective_policy_round_trips_through_the_environment():
    both = effective("students", "staff", "gpu-team")
    assert Effective.from_json(both.to_json()) == both
    environ = {POLICY_ENV: both.to_json()}
    assert Effective.from_environ(environ) == both
    assert Effective.from_environ({}) is None
    with pytest.raises(ValueError, match="not an effective policy"):
        Effective.from_json('{"groups": []}')
    summary = both.summary()
    assert summary["profiles"]["value"] == "*"
    assert summary["memory"] == {"value": "16Gi", "group": "staff", "groups": ["staff"]}


def test_gpu_amount_counts_requests_against_the_total():
    assert gpu_amount(None) == 0
    assert gpu_amount(GpuRequest(count=2)) == 2
    assert gpu_amount(GpuRequest(fraction=0.25)) == 0.25
    assert gpu_amount(GpuRequest(memory="20Gi"), device_memory_mib=80 * 1024) == 0.25
    assert gpu_amount(GpuRequest(memory="200Gi"), device_memory_mib=80 * 1024) == 1
    assert gpu_amount(GpuRequest(memory="20Gi")) == 1


# ------------------------------------------------------------------------- CLI


def test_cli_check_prints_errors_with_positions(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text("default:\n  profile: [cpu]\n")
    assert main(["policy", "check", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path}:2:3: default.profile: unknown key; did you mean 'profiles'?\n"
    )
    assert main(["policy", "check", str(tmp_path / "missing.yaml")]) == 1
    assert "policy file not found" in capsys.readouterr().err


def test_cli_check_prints_the_effective_rules_of_groups(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    assert main(["policy", "check", str(path)]) == 0
    assert "valid (3 groups: students, gpu-team, staff)" in capsys.readouterr().err

    assert main(["policy", "check", str(path), "--groups", "students,gpu-team,alumni"]) == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[1:]}
    assert rows["profiles"].split() == ["cpu,", "gpu-a100", "students,", "gpu-team"]
    assert rows["gpus"].split() == ["1", "gpu-team"]
    assert rows["maxCodespaces"].split() == ["2", "gpu-team"]
    assert rows["deployBackends"].split() == ["*", "(any)", "students"]
    assert "alumni" in err


def test_a_running_service_keeps_the_last_good_policy_when_the_file_breaks(tmp_path) -> None:
    import os

    path = tmp_path / "policy.yaml"
    path.write_text("default:\n  maxCodespaces: 2\n")
    assert read_policy(str(path)).for_groups([]).maxCodespaces.value == 2
    path.write_text("default:\n  maxCodespace: 3\n")
    os.utime(path, (1, 1))  # a new modification time: read again
    assert read_policy(str(path)).for_groups([]).maxCodespaces.value == 2  # the last good
    broken = tmp_path / "broken.yaml"
    broken.write_text("default:\n  maxCodespace: 3\n")
    with pytest.raises(PolicyError, match="maxCodespace"):
        read_policy(str(broken))  # no good rules before: the error
    assert read_policy("") is None
