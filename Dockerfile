FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY segstream segstream
COPY producers producers
COPY stream_app stream_app
COPY models models
COPY state state
RUN pip install --no-cache-dir .
ENV SEGSTREAM_DATA_DIR=/tmp/segstream
ENTRYPOINT ["segstream"]
CMD ["worker"]
