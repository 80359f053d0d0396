// Stage module 'tuning': fine-tuning (full, LoRA) and training jobs with checkpoints.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("tuning", "fine-tuning (full, LoRA) and training jobs with checkpoints")
