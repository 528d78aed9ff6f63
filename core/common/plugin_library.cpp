#include "common/plugin_library.hpp"

#include <dlfcn.h>

namespace bot4::detail {

std::unique_ptr<PluginHandle> PluginHandle::open(const std::string& path, const PluginKind& kind, uint64_t abi,
                                                 std::string& error) {
  // RTLD_LOCAL: two plugins may define the same class names without one binding to the other's.
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = ::dlerror();
    error = std::string("cannot load ") + kind.noun + " plugin " + path + ": " + (e ? e : "dlopen failed");
    return nullptr;
  }
  std::unique_ptr<PluginHandle> lib(new PluginHandle());
  lib->handle_ = h;  // closed by the destructor on every path from here
  lib->path_ = path;
  using AbiFn = uint64_t (*)();
  auto* abi_fn = reinterpret_cast<AbiFn>(::dlsym(h, kind.abi_symbol));
  lib->make_ = ::dlsym(h, kind.make_symbol);
  lib->destroy_ = ::dlsym(h, kind.destroy_symbol);
  lib->error_ = reinterpret_cast<const char* (*)()>(::dlsym(h, kind.error_symbol));
  if (abi_fn == nullptr || lib->make_ == nullptr || lib->destroy_ == nullptr || lib->error_ == nullptr) {
    error = path + " is not a bot4 " + kind.noun + " plugin (no " + kind.abi_symbol + " / " + kind.make_symbol +
            " / " + kind.destroy_symbol + " / " + kind.error_symbol + ": use " + kind.export_macro + ")";
    return nullptr;
  }
  if (abi_fn() != abi) {
    error = path + " was built against other bot4 headers (" + kind.fingerprint + " " + std::to_string(abi_fn()) +
            ", this bot4 " + std::to_string(abi) + "): rebuild it against this installation";
    return nullptr;
  }
  return lib;
}

PluginHandle::~PluginHandle() {
  if (handle_ != nullptr) ::dlclose(handle_);
}

}  // namespace bot4::detail
