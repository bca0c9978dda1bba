# readiness-operator image: the dependencies in a venv (one layer, reused until pyproject.toml changes),
# then the project as a small layer on top. Built with `docker build -t readiness-operator:dev .`
# (hack/kind-up.sh), or without Docker or a registry by hack/image.sh (podman on a Debian base made
# with mmdebstrap). The base needs python3 with venv; it is a build argument.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The dependencies and the build requirements, both read from pyproject.toml.
FROM ${PYTHON_IMAGE} AS deps
COPY pyproject.toml /tmp/pyproject.toml
# Behind a TLS-inspecting proxy the host's CA bundle can be handed to pip as the optional build secret
# `pip-ca` (hack/image.sh does): mounted for the RUN steps only, never stored in a layer.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
 && python3 -m venv /opt/venv \
 && python3 -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb")); \
      print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' >/tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && rm /tmp/pyproject.toml /tmp/requirements.txt

# The project, built and installed on its own prefix (no network: the build requirements are in the venv).
FROM deps AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
 && /opt/venv/bin/pip install --no-deps --no-build-isolation --prefix /opt/project . \
 && PYTHONPATH="$(echo /opt/project/lib/python3*/site-packages)" /opt/project/bin/readiness-operator version

# The runtime is the dependency stage itself (no 200 MB copy to hash on every build) plus the project.
FROM deps
LABEL org.opencontainers.image.title="readiness-operator" \
      org.opencontainers.image.description="Enforces production-readiness policy on Kubernetes Deployments" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=builder /opt/project/ /opt/venv/
USER 65532:65532
EXPOSE 8080 8000 9443
ENTRYPOINT ["readiness-operator"]
CMD ["run"]
