FROM python:3.11-slim
WORKDIR /app
# the CPU build of torch (~200 MB) first: the default wheel brings CUDA (several GB) a CPU-only service never uses
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.15.0"
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
