"""The deployment files (no Docker engine or cluster here): they parse and carry the settings that matter."""

from __future__ import annotations

import re

import yaml

from tests.helpers.paths import ROOT

DEPLOY = ROOT / "deploy"
SETTINGS = (ROOT / "include" / "latam_messaging" / "settings.py").read_text()


def test_the_image_is_the_official_airflow_with_this_project():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.3\.2$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", dockerfile, re.M)
    assert '"apache-airflow==3.3.2"' in dockerfile  # pip may not change the image's Airflow
    for source in re.findall(r"^COPY --chown=\S+ (\S+) ", dockerfile, re.M):
        assert (ROOT / source).exists(), source


def test_compose_runs_celery_on_postgres_and_redis_with_the_receiver():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler"} <= set(services)
    assert {"airflow-dag-processor", "airflow-triggerer", "airflow-worker", "webhook-receiver"} <= set(services)
    for name, service in services.items():
        if name.startswith("airflow-") or name == "webhook-receiver":
            env = service["environment"]
            assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
            assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
            assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
            assert '"conn_type": "postgres"' in env["AIRFLOW_CONN_MESSAGING_WAREHOUSE"]
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
            for variable in (k for k in env if k.startswith("MESSAGING_")):
                assert variable in SETTINGS, variable
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["airflow-worker"]["deploy"]["replicas"] == 2
    assert services["webhook-receiver"]["command"].startswith("python -m latam_messaging.webhooks.receiver")
    assert services["airflow-apiserver"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "latam_messaging migrate" in "".join(services["airflow-init"]["command"])
    assert "CREATE DATABASE messaging" in (DEPLOY / "postgres-init.sql").read_text()


def test_helm_values_use_the_kubernetes_executor_with_a_shared_drop_volume():
    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == "3.3.2"
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["MESSAGING_DROP_DIR"].startswith(values["volumeMounts"][0]["mountPath"])
    assert values["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert {s["envName"] for s in values["secret"]} == {"AIRFLOW_CONN_MESSAGING_WAREHOUSE", "MESSAGING_WEBHOOK_SECRET"}
    assert all(name in SETTINGS for name in env)
    receiver = list(yaml.safe_load_all((DEPLOY / "webhook-receiver.yaml").read_text()))
    assert [d["kind"] for d in receiver] == ["Deployment", "Service"]


def test_the_readme_points_to_the_deployment_files():
    readme = (ROOT / "README.md").read_text()
    for name in ("deploy/docker-compose.yml", "deploy/helm-values.yaml", "deploy/Dockerfile"):
        assert name in readme, name
