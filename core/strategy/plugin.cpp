#include "strategy/plugin.hpp"

#include <dlfcn.h>

namespace bot4::strategy {

void StrategyLibrary::Deleter::operator()(Strategy* s) const {
  if (s != nullptr && lib) lib->destroy_(s);  // freed by the library that allocated it
}

std::shared_ptr<StrategyLibrary> StrategyLibrary::open(const std::string& path, std::string& error) {
  // RTLD_LOCAL: two plugins may define the same class names without one binding to the other's.
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    error = "cannot load strategy plugin " + path + ": " + (e ? e : "dlopen failed");
    return nullptr;
  }
  std::shared_ptr<StrategyLibrary> lib(new StrategyLibrary());
  lib->handle_ = h;
  lib->path_ = path;
  using AbiFn = uint64_t (*)();
  auto* abi = reinterpret_cast<AbiFn>(::dlsym(h, "bot4_plugin_abi"));
  lib->make_ = reinterpret_cast<MakeFn>(::dlsym(h, "bot4_make_strategy"));
  lib->destroy_ = reinterpret_cast<DestroyFn>(::dlsym(h, "bot4_destroy_strategy"));
  lib->error_ = reinterpret_cast<ErrorFn>(::dlsym(h, "bot4_plugin_error"));
  if (abi == nullptr || lib->make_ == nullptr || lib->destroy_ == nullptr || lib->error_ == nullptr) {
    error = path + " is not a bot4 strategy plugin (no bot4_plugin_abi / bot4_make_strategy / "
            "bot4_destroy_strategy / bot4_plugin_error: use BOT4_STRATEGY_PLUGIN(Class))";
    return nullptr;
  }
  if (abi() != plugin_abi()) {
    error = path + " was built against other bot4 headers (interface fingerprint " + std::to_string(abi()) +
            ", this bot4 " + std::to_string(plugin_abi()) + "): rebuild it against this installation";
    return nullptr;
  }
  return lib;
}

StrategyLibrary::Ptr StrategyLibrary::make(const std::string& params_json, std::string& error) {
  Strategy* s = make_(params_json.c_str());
  if (s == nullptr) {
    error = path_ + ": " + error_();
    return Ptr(nullptr, Deleter{nullptr});
  }
  return Ptr(s, Deleter{shared_from_this()});
}

StrategyLibrary::~StrategyLibrary() {
  if (handle_ != nullptr) ::dlclose(handle_);
}

}  // namespace bot4::strategy
