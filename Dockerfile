# causa's image: migrate, worker, beat, listener, flower (causa ...) and the MLflow tracking
# server (entrypoint mlflow) all run from it.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY shared shared
COPY worker worker
COPY tasks tasks
COPY training training
COPY flows flows
COPY api api
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv pip install --system --no-cache -r requirements.lock \
 && uv pip install --system --no-cache --no-deps .
# /app/models: the model store (a volume shared by causa's services); /data: MLflow's database
# and artifacts. A new named volume takes the owner of the directory it is mounted on.
RUN useradd --create-home causa && mkdir -p /app/models /data && chown causa /app/models /data
USER causa
ENTRYPOINT ["causa"]
CMD ["--help"]
