// Stage module 'monitor': request metrics, drift and human feedback.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("monitor", "request metrics, drift and human feedback")
