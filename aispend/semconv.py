"""Every span attribute name aispend reads or writes, in one place.

The GenAI names moved out of ``opentelemetry-semantic-conventions`` into the separate GenAI
conventions repository, so the instrumentation and the exporter both import them from here
rather than from a package whose constants are marked as moved.  Older names emitted by peer
instrumentations (OpenLLMetry, OpenLIT, openai-v2 before the rename) are listed too, grouped
into the fallback chains the exporter reads in order (see shared/GENAI_SPANS.md).
"""

from __future__ import annotations

# --- GenAI semantic conventions -------------------------------------------------------------
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated name of the provider attribute
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"

GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST = "gen_ai.usage.cost"  # OpenLIT's pre-computed USD cost

ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_REQUEST_METHOD = "http.request.method"
URL_FULL = "url.full"
SERVICE_NAME = "service.name"
TELEMETRY_SDK_NAME = "telemetry.sdk.name"

# --- aispend's own attributes (no convention exists for them) --------------------------------
AISPEND_FEATURE = "aispend.feature"
AISPEND_CUSTOMER = "aispend.customer"
AISPEND_KEY = "aispend.key"
AISPEND_SERVICE_KIND = "aispend.service.kind"
AISPEND_USAGE_REQUESTS = "aispend.usage.requests"
AISPEND_USAGE_IMAGES = "aispend.usage.images"
AISPEND_IMAGE_SIZE = "aispend.image.size"
AISPEND_IMAGE_QUALITY = "aispend.image.quality"
AISPEND_USAGE_ESTIMATED = "aispend.usage.estimated"
AISPEND_USAGE_ESTIMATOR = "aispend.usage.estimator"  # how: a tiktoken encoding name, or "chars"

# --- well-known values ------------------------------------------------------------------------
ERROR_BUDGET_EXCEEDED = "budget_exceeded"
ERROR_OTHER = "_OTHER"

SERVICE_KINDS = ("llm", "embedding", "image", "search", "image_search")

# Attribution: the same three names are used as span attributes, baggage entries, request
# headers (``x-aispend-<name>``) and environment defaults (``AISPEND_<NAME>``).
ATTRIBUTION_FIELDS = ("feature", "customer", "key")
ATTRIBUTION_ATTRIBUTES = {"feature": AISPEND_FEATURE, "customer": AISPEND_CUSTOMER, "key": AISPEND_KEY}
ATTRIBUTION_HEADERS = {name: f"x-aispend-{name}" for name in ATTRIBUTION_FIELDS}
# Headers other cost-tracking tools document, read (and stripped) beside ``x-aispend-*`` unless
# ``AISPEND_ATTRIBUTION_HEADERS`` says otherwise: header -> field.
OTHER_ATTRIBUTION_HEADERS = {"x-customer-id": "customer", "x-feature": "feature"}

# --- fallback chains for reading spans from any instrumentation --------------------------------
# Read in order; the first attribute present wins.
PROVIDER_CHAIN = (GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM, "llm.provider", "llm.system")
MODEL_CHAIN = (GEN_AI_RESPONSE_MODEL, GEN_AI_REQUEST_MODEL, "llm.response.model", "llm.model_name")
REQUEST_MODEL_CHAIN = (GEN_AI_REQUEST_MODEL, "llm.request.model", "llm.model_name")
OPERATION_CHAIN = (GEN_AI_OPERATION_NAME, "llm.request.type")
INPUT_TOKENS_CHAIN = (GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS_CHAIN = (
    GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
CACHE_READ_CHAIN = (
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_CHAIN = (
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_CHAIN = (
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "gen_ai.usage.completion_tokens_details.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
OPENAI_API_BASE = "gen_ai.openai.api_base"  # OpenLLMetry
RESPONSE_MODEL_CHAIN = (GEN_AI_RESPONSE_MODEL, "llm.response.model")
COST_CHAIN = ("gen_ai.usage.cost.amount", GEN_AI_USAGE_COST, "llm.cost.total")
CUSTOMER_CHAIN = (
    AISPEND_CUSTOMER,
    "enduser.id",
    "user.id",
    "traceloop.association.properties.customer",
    "traceloop.association.properties.user_id",
    "gen_ai.request.user",
    "gen_ai.user",
    "llm.user",
)
FEATURE_CHAIN = (AISPEND_FEATURE, "traceloop.association.properties.feature", "traceloop.workflow.name")

# Every span attribute the exporter reads. The receiver decodes only these (a peer's span can carry
# dozens of prompt and completion attributes of many kB each that nothing here looks at).
READ_BY_EXPORTER = frozenset(
    {
        *PROVIDER_CHAIN,
        *MODEL_CHAIN,
        *REQUEST_MODEL_CHAIN,
        *RESPONSE_MODEL_CHAIN,
        *OPERATION_CHAIN,
        *INPUT_TOKENS_CHAIN,
        *OUTPUT_TOKENS_CHAIN,
        *CACHE_READ_CHAIN,
        *CACHE_WRITE_CHAIN,
        *REASONING_CHAIN,
        *COST_CHAIN,
        *CUSTOMER_CHAIN,
        *FEATURE_CHAIN,
        OPENINFERENCE_SPAN_KIND,
        OPENAI_API_BASE,
        GEN_AI_REQUEST_STREAM,
        GEN_AI_RESPONSE_ID,
        ERROR_TYPE,
        HTTP_RESPONSE_STATUS_CODE,
        SERVER_ADDRESS,
        URL_FULL,
        TELEMETRY_SDK_NAME,
        AISPEND_SERVICE_KIND,
        AISPEND_KEY,
        AISPEND_USAGE_REQUESTS,
        AISPEND_USAGE_IMAGES,
        AISPEND_IMAGE_SIZE,
        AISPEND_IMAGE_QUALITY,
        AISPEND_USAGE_ESTIMATED,
    }
)
