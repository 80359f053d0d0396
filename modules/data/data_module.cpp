// Stage module 'data': datasets: import, cleaning, exploration, splits, versions with lineage.
#include "common/placeholder.h"

LLMOPS_PLACEHOLDER_MODULE("data", "datasets: import, cleaning, exploration, splits, versions with lineage")
