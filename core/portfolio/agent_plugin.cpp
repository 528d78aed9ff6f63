#include "portfolio/agent_plugin.hpp"

#include <exception>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

PluginAgent::PluginAgent(const std::string& path, const std::string& params_json,
                         const std::vector<std::string>& feature_names)
    : agent_(nullptr, AgentLibrary::Deleter{nullptr}), path_(path), width_(feature_names.size()) {
  std::string error;
  auto lib = AgentLibrary::open(path, error);
  if (!lib) throw StepInputError("plugin", error);
  agent_ = lib->make(params_json, error);
  if (!agent_) throw StepInputError("plugin", error);
  try {
    agent_->bind(feature_names);
  } catch (const std::exception& e) {
    throw StepInputError("plugin", path + ": bind: " + e.what());
  }
}

AgentView PluginAgent::evaluate(const double* row) const {
  const AgentView v = agent_->evaluate(row, width_);
  auto bad = [&](const char* what) { throw StepInputError("plugin", path_ + ": evaluate returned " + what); };
  if (std::isnan(v.mu) != std::isnan(v.sigma)) bad("mu and sigma not NaN together (no view is both NaN)");
  if (std::isinf(v.mu) || std::isinf(v.sigma) || std::isinf(v.q[0]) || std::isinf(v.q[1]) || std::isinf(v.q[2]))
    bad("an infinite mu, sigma or quantile");
  if (v.sigma < 0) bad("a negative sigma");
  if (!(v.confidence >= 0 && v.confidence <= 1)) bad("a confidence outside [0, 1]");
  const bool view = std::isfinite(v.mu);
  if (!view && v.confidence != 0) bad("a confidence without a view (must be 0)");
  if (view && !(std::isfinite(v.q[0]) && v.q[0] <= v.q[1] && v.q[1] <= v.q[2]))
    bad("quantiles that are not finite and ascending with a view");
  if (v.regime < -1) bad("a regime below -1");
  return v;
}

void PluginAgent::evaluate_rows(const double* matrix, size_t rows, AgentView* out) const {
  for (size_t i = 0; i < rows; ++i) out[i] = evaluate(matrix + i * width_);
}

}  // namespace bot4::portfolio
