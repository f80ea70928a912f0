# syntax=docker/dockerfile:1
# One image for every crmhub process; pick the process with the container command, e.g.
#   docker run --rm crmhub python -m services.ingest
#   docker run --rm crmhub crmhub topics create
# See docker-compose.yml and docs/production.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CRMHUB_DATA_DIR=/var/lib/crmhub \
    CRMHUB_API_HOST=0.0.0.0

RUN groupadd --system --gid 10001 crmhub \
 && useradd --system --uid 10001 --gid crmhub --home-dir /var/lib/crmhub --create-home \
        --shell /usr/sbin/nologin crmhub \
 && install -d -o crmhub -g crmhub /var/lib/crmhub/metrics

# Build from a throw-away source tree: the processes import the installed package, not /src.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crmhub/ crmhub/
COPY schemas/ schemas/
COPY services/ services/
RUN pip install --no-cache-dir ".[postgres]" \
 && rm -rf /src

WORKDIR /var/lib/crmhub
USER crmhub

EXPOSE 8000
CMD ["crmhub", "--help"]
