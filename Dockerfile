# causa's image: the worker, beat, listener and migrate all run from it.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY shared shared
COPY worker worker
COPY tasks tasks
COPY training training
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv pip install --system --no-cache -r requirements.lock \
 && uv pip install --system --no-cache --no-deps .
RUN useradd --create-home causa && mkdir -p /app/models && chown causa /app/models
USER causa
ENTRYPOINT ["causa"]
CMD ["--help"]
