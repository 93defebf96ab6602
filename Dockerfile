# The scoring API (`nbship serve`) in a slim, non-root image.
#
#   docker build -t nbship-api .
#   docker run --rm -p 127.0.0.1:8000:8000 \
#     -e NBSHIP_API_KEY=change-me \
#     -v "$PWD/tracking:$PWD/tracking:ro" \
#     nbship-api --set "tracking_uri=sqlite:///$PWD/tracking/mlflow.db"
#
# The model is not baked in: the container loads models:/<model_name>@champion from
# the tracking store it is pointed at (a mounted SQLite store, mounted at the same
# absolute path because the registry records absolute artifact paths, or an MLflow
# server URI), and hot-swaps on POST /reload or --poll-interval. See
# docs/serving.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    PLOOMBER_STATS_ENABLED=false

# libgomp1: the OpenMP runtime XGBoost and LightGBM load
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# only what serving imports, at exactly the versions of the lock file (the lock
# also pins JupyterLab, Ploomber, ... which the API does not need)
COPY requirements.lock.txt ./
RUN pip install -c requirements.lock.txt \
        fastapi uvicorn pydantic mlflow scikit-learn xgboost lightgbm \
        pandas numpy scipy pyarrow pyyaml

COPY pyproject.toml README.md pipeline.yaml env.yaml ./
COPY config/schema.yaml config/schema.yaml
COPY tasks/ tasks/
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 nbship \
    && mkdir -p /var/lib/nbship/predictions \
    && chown -R nbship /var/lib/nbship

USER nbship
EXPOSE 8000
VOLUME ["/var/lib/nbship/predictions"]

# liveness: /health answers as soon as the process is up (readiness is /ready)
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"]

# inside a container the port must listen on all interfaces; publish it on the
# host's loopback only (-p 127.0.0.1:8000:8000) unless an API key is set
ENTRYPOINT ["nbship", "serve", "--host", "0.0.0.0", "--port", "8000", \
            "--prediction-log", "/var/lib/nbship/predictions"]
