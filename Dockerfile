# One image for every service and the gateway; each Deployment picks its module with `args`.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services services
COPY gateway gateway
COPY protos/gen protos/gen
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin medsettle
COPY --from=build /install /usr/local
# Alembic revisions and the in-package data are read at start-up from the installed packages.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001
ENTRYPOINT ["python", "-m"]
CMD ["gateway"]
