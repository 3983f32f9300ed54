# One image for every certsvc process; the command picks which (certsvc api, worker, ...).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY worker ./worker
COPY devtools ./devtools
RUN pip install --no-cache-dir .

RUN useradd --system --uid 10001 certsvc
USER certsvc
ENTRYPOINT ["certsvc"]
CMD ["api"]
