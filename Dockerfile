# The nameorigin service: FastAPI + a character-level RNN, the shipped checkpoint inside.
#
#   CPU (default):  docker build -t nameorigin:0.1.0 .
#   CUDA:           docker build --build-arg TORCH_INDEX=cu128 -t nameorigin:0.1.0-cuda .
#                   docker run --gpus all -e NAMEORIGIN_DEVICE=cuda -p 8000:8000 nameorigin:0.1.0-cuda
#   No registry:    deploy/image-test builds a Debian base with debootstrap and passes it as
#                   --build-arg PYTHON_IMAGE=nameorigin-base:bookworm (any image with python3.11 + venv).
#
# Both images come from this one file: torch's CUDA wheels carry their own CUDA runtime, so the
# GPU image differs only in the wheel index and needs nothing from the host but the driver.
# The image serves: it holds model/ and app/ and their dependencies, not training/ or batch/.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtualenv with torch and the package, copied whole into the runtime stage ----
FROM ${PYTHON_IMAGE} AS builder

# TORCH_INDEX is "cpu" or a CUDA variant that pytorch.org lists for TORCH_VERSION (cu126, cu128, ...).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=cpu
# A CA bundle for pip where the network re-signs TLS (deploy/image-test passes the host's, from
# deploy/wheels/); empty uses the base image's. Only this stage sees it: the runtime image has no /wheels.
ARG PIP_CERT=

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# torch first, pinned, chosen by deploy/install_torch.py: from PyTorch's own index for TORCH_INDEX,
# or, where that index cannot be reached, from a wheel put in deploy/wheels/ (deploy/image-test does)
# or the package index, but only if it is that build. Left to `pip install .`, PyPI's torch would
# pull the multi-GB CUDA build into the CPU image. The package's `torch>=2.2` then accepts this pin.
COPY deploy/install_torch.py /src/deploy/install_torch.py
COPY deploy/wheels/ /wheels/
RUN { [ -n "$PIP_CERT" ] || unset PIP_CERT; } \
 && python -m venv /opt/venv \
 && PIP_FIND_LINKS=/wheels python /src/deploy/install_torch.py --torch "${TORCH_INDEX}" --version "${TORCH_VERSION}"

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY model/ model/
COPY app/ app/
# A regular, non-editable install: the shipped checkpoint goes into site-packages as package data,
# so the runtime stage needs the virtualenv and nothing from /src.
RUN { [ -n "$PIP_CERT" ] || unset PIP_CERT; } && pip install .

# ---- runtime: slim Python, the virtualenv, a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime

# The service binds loopback by default; in a container it must listen on every interface.
# NVIDIA_DRIVER_CAPABILITIES is read only by the NVIDIA container runtime: "compute" mounts the
# CUDA driver into a GPU container (this base image is not an nvidia/cuda one, which sets it).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NAMEORIGIN_HOST=0.0.0.0 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# A numeric uid so that Kubernetes' runAsNonRoot can verify it without resolving a name.
RUN groupadd --system --gid 10001 nameorigin \
 && useradd --system --uid 10001 --gid nameorigin --create-home --shell /usr/sbin/nologin nameorigin

COPY --from=builder /opt/venv /opt/venv

WORKDIR /home/nameorigin
USER 10001:10001

# Fail the build, not the first request, when the shipped checkpoint is missing or unreadable by
# the service user. Custom checkpoints come in at run time: mount a volume and point
# NAMEORIGIN_CHECKPOINT at the file (see docs/deployment.md).
RUN python -c "from model.predictor import Predictor; Predictor.from_path(device='cpu')"

EXPOSE 8000

# Liveness only: slim images have no curl, so the probe is Python. It reads the port the way the
# settings do (NAMEORIGIN_PORT, default 8000; tests/test_deploy.py keeps the two equal) without
# importing the app, which would import torch: seconds of CPU on every probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NAMEORIGIN_PORT', '8000'), timeout=4)"]

# `python -m app` runs uvicorn with host, port, workers and every other setting read from the
# NAMEORIGIN_* environment, e.g. `docker run -e NAMEORIGIN_WORKERS=4 ...`.
CMD ["python", "-m", "app"]
