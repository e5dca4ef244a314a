"""Deploy files keep each worker's RocksDB tables on that worker's own persistent volume."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from monitor.settings import load_config, load_config_text

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _under(path: str, mount: str) -> bool:
    return PurePosixPath(mount) in (PurePosixPath(path), *PurePosixPath(path).parents)


def test_kubernetes_workers_keep_rocksdb_tables_on_their_claim() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "configmap.yaml").read_text()))
    config = load_config_text(docs[0]["data"]["chainwatch.yaml"], "configmap.yaml")
    assert config.worker.store == "rocksdb"
    assert config.worker.state_dir is not None
    workload = next(d for d in yaml.safe_load_all((DEPLOY / "k8s" / "worker.yaml").read_text())
                    if d["kind"] == "StatefulSet")
    (claim,) = workload["spec"]["volumeClaimTemplates"]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert _under(config.worker.state_dir, mounts[claim["metadata"]["name"]])


def test_compose_workers_keep_rocksdb_tables_on_their_named_volume() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for file in ("chainwatch.compose.yaml", "chainwatch.compose-cluster.yaml"):
        config = load_config(DEPLOY / file)
        assert config.worker.store == "rocksdb", file
        assert config.worker.state_dir is not None
        workers = {n: s for n, s in compose["services"].items() if s.get("command") == ["worker"]}
        assert len(workers) >= 2
        for name, service in workers.items():
            named = [v.split(":") for v in service["volumes"] if not v.startswith(".")]
            assert any(src in compose["volumes"] and _under(config.worker.state_dir, dst)
                       for src, dst, *_ in named), (file, name)
