FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY esb ./esb
COPY agents ./agents
COPY tables ./tables
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV ESB_WEB_HOST=0.0.0.0 ESB_DATA_DIR=/var/lib/esb
EXPOSE 8080
# one replica per container; scale with more containers (same ESB_APP_ID = same cluster)
CMD ["sh", "-c", "exec faust -A esb.app worker -l info --web-port ${ESB_WEB_PORT:-8080}"]
