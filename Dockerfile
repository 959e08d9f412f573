FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first and pinned: the biggest layer, cached apart from the code. pyproject.toml pins
# the same version, so `pip install .` below keeps this build instead of pulling another.
RUN pip install torch==2.13.0

WORKDIR /app
# The whole tree: `trainyard api` runs `alembic upgrade head` from migrations/ in /app.
COPY . .
RUN pip install -c requirements.lock .

# Non-root. /data is created here and owned by the user, so a fresh named volume mounted on
# it inherits that ownership.
RUN useradd --create-home --uid 1000 trainyard \
    && mkdir -p /data \
    && chown trainyard:trainyard /data
USER trainyard

ENV TRAINYARD_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

CMD ["trainyard", "api"]
