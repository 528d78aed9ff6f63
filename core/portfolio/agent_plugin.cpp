#include "portfolio/agent_plugin.hpp"

#include <dlfcn.h>

#include <exception>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

void AgentLibrary::Deleter::operator()(UserSignalAgent* a) const {
  if (a != nullptr && lib) lib->destroy_(a);  // freed by the library that allocated it
}

std::shared_ptr<AgentLibrary> AgentLibrary::open(const std::string& path, std::string& error) {
  // RTLD_LOCAL as for strategy plugins: two plugins may define the same class names.
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    error = "cannot load agent plugin " + path + ": " + (e ? e : "dlopen failed");
    return nullptr;
  }
  std::shared_ptr<AgentLibrary> lib(new AgentLibrary());
  lib->handle_ = h;
  lib->path_ = path;
  using AbiFn = uint64_t (*)();
  auto* abi = reinterpret_cast<AbiFn>(::dlsym(h, "bot4_agent_plugin_abi"));
  lib->make_ = reinterpret_cast<MakeFn>(::dlsym(h, "bot4_make_agent"));
  lib->destroy_ = reinterpret_cast<DestroyFn>(::dlsym(h, "bot4_destroy_agent"));
  lib->error_ = reinterpret_cast<ErrorFn>(::dlsym(h, "bot4_agent_plugin_error"));
  if (abi == nullptr || lib->make_ == nullptr || lib->destroy_ == nullptr || lib->error_ == nullptr) {
    error = path + " is not a bot4 agent plugin (no bot4_agent_plugin_abi / bot4_make_agent / bot4_destroy_agent / "
                   "bot4_agent_plugin_error: use BOT4_AGENT_PLUGIN(Class))";
    return nullptr;
  }
  if (abi() != agent_plugin_abi()) {
    error = path + " was built against other bot4 headers (agent interface fingerprint " + std::to_string(abi()) +
            ", this bot4 " + std::to_string(agent_plugin_abi()) + "): rebuild it against this installation";
    return nullptr;
  }
  return lib;
}

AgentLibrary::Ptr AgentLibrary::make(const std::string& params_json, std::string& error) {
  UserSignalAgent* a = make_(params_json.c_str());
  if (a == nullptr) {
    error = path_ + ": " + error_();
    return Ptr(nullptr, Deleter{nullptr});
  }
  return Ptr(a, Deleter{shared_from_this()});
}

AgentLibrary::~AgentLibrary() {
  if (handle_ != nullptr) ::dlclose(handle_);
}

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
