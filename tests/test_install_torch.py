"""deploy/install_torch.py: which torch build a machine gets, and from where."""

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("install_torch", REPO_ROOT / "deploy" / "install_torch.py")
install_torch = importlib.util.module_from_spec(spec)
sys.modules["install_torch"] = install_torch  # its dataclasses look their module up
spec.loader.exec_module(install_torch)

CPU_WHEEL = install_torch.Candidate("2.13.0+cpu", "file:///opt/wheels/torch-2.13.0+cpu.whl", needs_cuda=False)
PYPI_CUDA_WHEEL = install_torch.Candidate("2.13.0", "https://files.pythonhosted.org/torch-2.13.0.whl", needs_cuda=True)


@pytest.mark.parametrize(
    ("requested", "has_gpu", "build"),
    [("auto", False, "cpu"), ("auto", True, "cu128"), ("cpu", True, "cpu"), ("cu126", False, "cu126")],
)
def test_auto_picks_cuda_only_where_a_gpu_is_present_and_an_explicit_build_wins(requested, has_gpu, build):
    assert install_torch.choose_build(requested, has_gpu) == build


def test_an_unknown_build_is_refused():
    with pytest.raises(install_torch.TorchInstallError, match="TORCH must be auto or one of"):
        install_torch.choose_build("gpu", False)


def test_the_pytorch_index_for_the_build_is_used_when_it_answers(monkeypatch):
    monkeypatch.setattr(install_torch, "gpu_present", lambda: False)
    monkeypatch.setattr(install_torch, "index_reachable", lambda url: True)
    command, why = install_torch.plan("python", "auto", "2.13.0")
    assert command[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert "torch==2.13.0" in command and "(cpu)" in why


@pytest.mark.parametrize(("build", "wheel"), [("cpu", CPU_WHEEL), ("cu128", PYPI_CUDA_WHEEL)])
def test_without_the_pytorch_index_the_plain_index_serves_a_wheel_of_the_right_build(monkeypatch, build, wheel):
    monkeypatch.setattr(install_torch, "index_reachable", lambda url: False)
    monkeypatch.setattr(install_torch, "dry_run", lambda python, version: wheel)
    command, why = install_torch.plan("python", build, "2.13.0")
    assert "--index-url" not in command and "cannot be reached" in why


@pytest.mark.parametrize(
    ("build", "wheel", "kind"), [("cpu", PYPI_CUDA_WHEEL, "a CUDA build"), ("cu128", CPU_WHEEL, "a CPU build")]
)
def test_a_cpu_machine_never_downloads_cuda_wheels_and_the_reverse(monkeypatch, build, wheel, kind):
    monkeypatch.setattr(install_torch, "index_reachable", lambda url: False)
    monkeypatch.setattr(install_torch, "dry_run", lambda python, version: wheel)
    with pytest.raises(install_torch.TorchInstallError, match=f"would install {kind}"):
        install_torch.plan("python", build, "2.13.0")


def test_the_cuda_check_reads_nvidia_requirements_from_pips_report():
    report = {
        "install": [
            {
                "metadata": {
                    "name": "torch",
                    "version": "2.13.0",
                    "requires_dist": ["filelock", 'nvidia-cudnn-cu13==9.20.0.48; platform_system == "Linux"'],
                },
                "download_info": {"url": "https://files.pythonhosted.org/torch.whl"},
            }
        ]
    }
    assert install_torch.candidate_from_report(report).needs_cuda
    report["install"][0]["metadata"]["requires_dist"] = ["filelock", "sympy"]
    assert not install_torch.candidate_from_report(report).needs_cuda


def test_pips_real_dry_run_names_the_wheel_it_would_install_without_downloading_it():
    candidate = install_torch.dry_run(sys.executable, "2.13.0")
    assert candidate.version.startswith("2.13.0") and candidate.url
