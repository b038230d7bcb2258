"""The GitHub workflows: linted (zizmor, schema), and the deploy reachable only from main."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def _workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_zizmor_finds_nothing() -> None:
    out = subprocess.run(
        [_tool("zizmor"), "--offline", str(WORKFLOWS)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflows_match_the_github_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    out = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_deploy_runs_only_for_main_of_this_repository() -> None:
    ci = _workflow("ci.yml")
    assert "workflow_run" not in ci["on"] and "pull_request_target" not in ci["on"]
    deploy = ci["jobs"]["deploy"]
    condition = " ".join(deploy["if"].split())
    assert "github.ref == 'refs/heads/main'" in condition
    assert "(github.event_name == 'push' || github.event_name == 'workflow_dispatch')" in condition
    assert condition.startswith("github.ref == 'refs/heads/main' &&")  # no "||" around the ref check
    assert deploy["needs"] == "test"
    assert deploy["environment"] == "huggingface-space"
    # Every other workflow must not be able to deploy: only ci.yml mentions the secret.
    for path in WORKFLOWS.glob("*.yml"):
        if path.name != "ci.yml":
            assert "HF_TOKEN" not in path.read_text(), path.name


def test_token_never_on_a_command_line_or_in_a_url() -> None:
    ci = _workflow("ci.yml")
    for job in ci["jobs"].values():
        for step in job["steps"]:
            run = step.get("run", "")
            assert "secrets." not in run and "HF_TOKEN}" not in run and "@huggingface.co" not in run


def test_least_privilege_and_pinned_actions() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        wf = _workflow(path.name)
        assert wf.get("permissions") == {}, f"{path.name}: top-level permissions must be empty"
        for name, job in wf["jobs"].items():
            assert job.get("permissions") == {"contents": "read"}, f"{path.name}:{name}"
            for step in job["steps"]:
                uses = step.get("uses")
                if uses:
                    ref = uses.split("@", 1)[1]
                    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), uses
                    if uses.startswith("actions/checkout@"):
                        assert step["with"]["persist-credentials"] is False
