# One image for every role: `api` (default), `worker`, `topics`, `migrate`, `produce`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY models models
COPY streams streams
COPY storage storage
COPY agents agents
COPY api api
COPY service service
COPY reports reports
RUN pip install . && rm -rf /src

# Unprivileged user; its home is the working directory (the Faust worker keeps local
# table state under it).
RUN useradd --create-home --uid 10001 --user-group energy
USER energy
WORKDIR /home/energy

ENV API_HOST=0.0.0.0 \
    API_PORT=8002 \
    LOG_FORMAT=json \
    DEMO=false \
    DATA_DIR=/home/energy/data
EXPOSE 8002

# Checks the API role; compose disables it for the other roles.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('API_PORT', '8002'), timeout=2)"]

ENTRYPOINT ["energy-processing"]
CMD ["api"]
