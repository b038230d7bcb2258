# Serving image (e.g. a Hugging Face Docker Space): runtime requirements only, no torch.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app
# The app folder stays root-owned (read-only for the app); donated drawings go to feedback/,
# the one folder the user owns, or to /data/feedback when the Space has persistent storage.
RUN install -d -o user -g user feedback

# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps .

COPY app.py ./
COPY .streamlit ./.streamlit
COPY docs ./docs

USER 1000
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/_stcore/health').read() != b'ok')"]
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "7860", "--server.headless", "true"]
