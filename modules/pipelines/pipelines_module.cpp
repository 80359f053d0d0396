// Stage module 'pipelines': chains stages and re-runs them on new data.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("pipelines", "chains stages and re-runs them on new data")
