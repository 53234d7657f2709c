FROM python:3.11-slim
WORKDIR /app
# the CPU build of torch (~200 MB) first: the default wheel brings CUDA (several GB) a CPU-only service never uses
COPY constraints.txt ./
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -c constraints.txt torch
COPY pyproject.toml README.md ./
COPY segstream segstream
COPY producers producers
COPY stream_app stream_app
COPY models models
COPY state state
# the worker and the API (one image); no research extra: no scikit-learn, matplotlib or river
RUN pip install --no-cache-dir -c constraints.txt ".[api]"
ENV SEGSTREAM_DATA_DIR=/tmp/segstream
ENTRYPOINT ["segstream"]
CMD ["worker"]
