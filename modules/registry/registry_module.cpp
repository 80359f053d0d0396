// Stage module 'registry': model versions, review gates, approval and aliases.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("registry", "model versions, review gates, approval and aliases")
