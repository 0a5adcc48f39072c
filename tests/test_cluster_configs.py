"""The deployment configs in cluster_configs/ are valid for the tools that consume them.

- local.yaml goes through the same config path as ``ray up`` up to launching nodes
  (``_bootstrap_config``: prepare_config, fillout_defaults, validate_config against
  ray-schema.json, the local provider's bootstrap). No SSH, no network.
- aws.yaml goes through prepare_config + validate_config only: the AWS provider's
  resource autodetection and bootstrap call EC2/IAM and need credentials. Its node_config
  is additionally checked against the EC2 RunInstances API model that ships with botocore
  (offline), since Ray passes node_config straight to RunInstances.
- kuberay-raycluster.yaml is parsed with PyYAML and its structure checked; the RayCluster
  is also run through Ray's own RayCluster -> autoscaler-config translation, which ends in
  validate_config.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("jsonschema")  # Ray's validate_config needs it (ray[default] brings it)

CONFIGS = Path(__file__).resolve().parent.parent / "cluster_configs"
LAUNCHER_CONFIGS = ["local.yaml", "aws.yaml"]
DATA_DIR = "/var/lib/raykafka/data"
MOUNT = "/var/lib/raykafka"


def load(name: str) -> dict:
    with open(CONFIGS / name) as f:
        return yaml.safe_load(f)


def load_manifest() -> list[dict]:
    with open(CONFIGS / "kuberay-raycluster.yaml") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def raycluster() -> dict:
    (cr,) = [doc for doc in load_manifest() if doc["kind"] == "RayCluster"]
    return cr


def pod_specs(cr: dict) -> list[tuple[str, dict]]:
    spec = cr["spec"]
    groups = [("head", spec["headGroupSpec"])]
    groups += [(group["groupName"], group) for group in spec["workerGroupSpecs"]]
    return [(name, group["template"]["spec"]) for name, group in groups]


# -- launcher configs: Ray's own validation ------------------------------------------------


def test_local_config_passes_ray_up_config_path():
    from ray.autoscaler._private.commands import _bootstrap_config
    from ray.autoscaler._private.local.config import LOCAL_CLUSTER_NODE_TYPE

    config = load("local.yaml")
    resolved = _bootstrap_config(copy.deepcopy(config), no_config_cache=True)

    node_type = resolved["available_node_types"][LOCAL_CLUSTER_NODE_TYPE]
    workers = len(config["provider"]["worker_ips"])
    assert node_type["min_workers"] == node_type["max_workers"] == workers  # every machine joins
    assert resolved["max_workers"] == workers
    # setup_commands were merged into the head and worker setup, as `ray up` runs them
    assert resolved["head_setup_commands"][: len(config["setup_commands"])] == config["setup_commands"]
    assert resolved["worker_setup_commands"][: len(config["setup_commands"])] == config["setup_commands"]


def test_aws_config_passes_ray_schema_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(load("aws.yaml"))
    validate_config(prepared)  # ray-schema.json + head_node_type / min_workers checks

    head = prepared["head_node_type"]
    workers = {name: t for name, t in prepared["available_node_types"].items() if name != head}
    assert workers, "a worker node type"
    for node_type in workers.values():
        # a fixed broker pool: the autoscaler never removes a node that holds partitions
        assert node_type["min_workers"] == node_type["max_workers"] > 0
    assert prepared["max_workers"] == sum(t["max_workers"] for t in workers.values())


def test_aws_node_configs_match_the_ec2_run_instances_api():
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.validate import ParamValidator

    shape = botocore_session.get_session().get_service_model("ec2").operation_model("RunInstances")
    config = load("aws.yaml")
    for name, node_type in config["available_node_types"].items():
        params = {**node_type["node_config"], "MinCount": 1, "MaxCount": 1}
        report = ParamValidator().validate(params, shape.input_shape)
        assert not report.has_errors(), f"{name}: {report.generate_report()}"
        devices = {m["DeviceName"]: m["Ebs"] for m in node_type["node_config"]["BlockDeviceMappings"]}
        data = [ebs for device, ebs in devices.items() if device != "/dev/sda1"]
        assert data and all(ebs["DeleteOnTermination"] is False for ebs in data), name


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_exports_data_dir_and_token_auth_to_ray_start(name):
    config = load(name)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        (start,) = [cmd for cmd in config[key] if "ray start" in cmd]
        exports = re.search(r"export ([^;]*);", start)
        assert exports, f"{name} {key}: env exported in the same command as ray start"
        assert f"RAYKAFKA_DATA_DIR={DATA_DIR}" in exports.group(1).split()
        assert "RAY_AUTH_MODE=token" in exports.group(1).split()
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_installs_raykafka_and_prepares_the_data_dir(name):
    config = load(name)
    installs = [cmd for cmd in config["setup_commands"] if re.search(r"pip install .*raykafka", cmd)]
    assert installs, f"{name}: a setup command pip-installs raykafka"
    source = installs[0].split()[-1]
    assert source in config["file_mounts"], f"{name}: installs from a path that is file-mounted"
    assert any("ray[default]==" in cmd for cmd in config["setup_commands"]), "Ray pinned on the nodes"
    init = " ".join(config["initialization_commands"])
    assert f"mkdir -p {DATA_DIR}" in init
    assert "chown" in init


def test_aws_config_formats_and_mounts_the_data_volume_once():
    init = " ".join(load("aws.yaml")["initialization_commands"])
    assert "mkfs.xfs -L raykafka" in init
    assert "/dev/disk/by-label/raykafka" in init  # formatted only when no labelled volume exists
    assert f"LABEL=raykafka {MOUNT} xfs" in init  # fstab: mounted again after stop/start
    assert f"mountpoint -q {MOUNT}" in init


# -- KubeRay manifest ------------------------------------------------------------------------


def test_kuberay_manifest_is_a_raycluster_with_head_and_workers():
    cr = raycluster()
    assert cr["apiVersion"] == "ray.io/v1"
    assert cr["metadata"]["name"]
    spec = cr["spec"]
    assert spec["enableInTreeAutoscaling"] is False
    assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        assert isinstance(group["rayStartParams"], dict)
        assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 1


def test_kuberay_pods_mount_their_own_claim_at_the_data_dir():
    claims = {doc["metadata"]["name"] for doc in load_manifest() if doc["kind"] == "PersistentVolumeClaim"}
    used = []
    for name, pod in pod_specs(raycluster()):
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["RAYKAFKA_DATA_DIR"]["value"] == DATA_DIR, name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert MOUNT in mounts and DATA_DIR.startswith(MOUNT + "/"), name
        volumes = {v["name"]: v for v in pod["volumes"]}
        claim = volumes[mounts[MOUNT]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims, f"{name}: claim {claim} is declared in the manifest"
        used.append(claim)
        assert container["image"] == pod_specs(raycluster())[0][1]["containers"][0]["image"]
    assert len(used) == len(set(used)) == len(claims), "one claim per pod, none shared, none unused"


def test_kuberay_pods_take_the_auth_token_from_a_secret():
    secrets = set()
    for name, pod in pod_specs(raycluster()):
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token", name
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert "value" not in env["RAY_AUTH_TOKEN"], f"{name}: no token literal in the manifest"
        secrets.add((ref["name"], ref["key"]))
    assert len(secrets) == 1, "every pod uses the same token"


def test_kuberay_raycluster_passes_ray_autoscaler_translation():
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    cr = raycluster()
    cr["metadata"].setdefault("namespace", "default")  # the API server fills it in
    config = _derive_autoscaling_config_from_ray_cr(cr)  # ends in validate_config
    groups = {g["groupName"] for g in cr["spec"]["workerGroupSpecs"]}
    assert set(config["available_node_types"]) == groups | {"headgroup"}
    for group in groups:
        assert config["available_node_types"][group]["resources"]["CPU"] == 4


def test_image_build_installs_raykafka():
    dockerfile = (CONFIGS / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install .*raykafka-src", dockerfile, re.M)
    assert 'python -c "import raykafka"' in dockerfile


# -- all configs --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*LAUNCHER_CONFIGS, "kuberay-raycluster.yaml"])
def test_every_config_puts_data_dir_on_the_persistent_mount(name):
    text = (CONFIGS / name).read_text()
    values = re.findall(r"RAYKAFKA_DATA_DIR(?:=|\s*\n\s*value:\s*)([^\s;)'\"]+)", text)
    assert values, f"{name} sets RAYKAFKA_DATA_DIR"
    assert set(values) == {DATA_DIR}, f"{name}: {values}"
    assert "/tmp" not in values and "~" not in "".join(values)


def test_readme_covers_starting_and_submitting():
    readme = (CONFIGS / "README.md").read_text()
    for needle in (
        "ray up cluster_configs/local.yaml",
        "ray up cluster_configs/aws.yaml",
        "kubectl apply -f cluster_configs/kuberay-raycluster.yaml",
        "ray get-auth-token",
        "producer_job.py",
        "consumer_job.py",
        "--expect",
    ):
        assert needle in readme, needle
