#include "sim/latency_model.hpp"
// Header-only model; this unit keeps the one-file-per-model layout.
