# gatekeeper: the controller (`gatekeeper controller run`) and the trace intake (`gatekeeper intake`) in one image.
#
#   python -m pip wheel --no-deps -w dist .            # the wheel this image installs
#   docker build -t gatekeeper:0.1.0 .                   # the tag charts/gatekeeper deploys (appVersion)
#
# Dependencies come pinned, with hashes, from requirements.lock; the wheel itself without dependencies.
# Runs as a non-root user and never writes to its root filesystem (bytecode is compiled at build time), so
# the chart's readOnlyRootFilesystem holds; /tmp is the only writable path (an emptyDir in the chart).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gatekeeper
COPY requirements.lock /tmp/requirements.lock
RUN /opt/gatekeeper/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock
COPY dist/gatekeeper-0.1.0-py3-none-any.whl /tmp/
RUN /opt/gatekeeper/bin/pip install --no-deps /tmp/gatekeeper-0.1.0-py3-none-any.whl \
 && /opt/gatekeeper/bin/python -m compileall -q /opt/gatekeeper/lib \
 && /opt/gatekeeper/bin/gatekeeper --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gatekeeper" \
      org.opencontainers.image.description="An observability gate for progressive delivery" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/gatekeeper /opt/gatekeeper
ENV PATH=/opt/gatekeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 4317 4318 8080 8081 9464
ENTRYPOINT ["gatekeeper"]
CMD ["--help"]
