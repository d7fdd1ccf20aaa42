# deltaboard: one image for the API (default command) and the workers (`deltaboard worker`).
#   docker compose up --scale worker=N      (see docker-compose.yml and .env.example)

# 1. The dashboard's npm packages (uPlot), exactly as locked.
FROM node:22-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./

# 2. The package and its runtime dependencies (no dev extra) in a venv that the final stage copies whole.
#    README.md is only the package's long description and is left out.
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY app/ app/
COPY worker/ worker/
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

# 3. The runtime: the venv, the static dashboard, a non-root user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    DELTABOARD_FRONTEND_DIR=/app/frontend
RUN groupadd --system --gid 10001 deltaboard \
    && useradd --system --no-log-init --uid 10001 --gid deltaboard --no-create-home \
       --shell /usr/sbin/nologin deltaboard
COPY --from=builder /opt/venv /opt/venv
COPY --from=frontend /src/frontend /app/frontend
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; t = os.environ.get('DELTABOARD_API_TOKEN'); u.urlopen(u.Request('http://127.0.0.1:8000/api/health', headers={'Authorization': 'Bearer ' + t} if t else {}), timeout=4)"]
CMD ["deltaboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
