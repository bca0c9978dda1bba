# readiness-operator image: build a wheel, install it into a venv, copy only the venv into a clean
# slim runtime. Build and load into kind with hack/kind-up.sh (or `docker build -t readiness-operator:dev .`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl \
 && /opt/venv/bin/readiness-operator version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="readiness-operator" \
      org.opencontainers.image.description="Enforces production-readiness policy on Kubernetes Deployments" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8000 9443
ENTRYPOINT ["readiness-operator"]
CMD ["run"]
