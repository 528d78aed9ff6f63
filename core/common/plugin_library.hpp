#pragma once
// One loader for every kind of C++ plugin (user strategies, core/strategy/plugin.hpp; user signal
// agents, core/portfolio/agent_plugin.hpp): dlopen the shared library, look up its four C entry
// points (interface fingerprint, factory, destroyer, last error), refuse it with a clear message
// when one is missing or the fingerprint differs from the loader's, and keep it loaded while any
// object it made lives. A kind of plugin is a Traits struct:
//
//   struct Traits {
//     using Interface = ...;                  // the abstract class the plugin implements
//     static constexpr PluginKind kind{...};  // its entry-point names and the words of its errors
//     static constexpr uint64_t abi();        // the loader's fingerprint of Interface
//   };
#include <cstdint>
#include <memory>
#include <string>

namespace bot4 {

struct PluginKind {
  const char* noun;            // "strategy": "cannot load strategy plugin ...", "is not a bot4 strategy plugin"
  const char* abi_symbol;      // uint64_t f()
  const char* make_symbol;     // Interface* f(const char* params_json), nullptr on error
  const char* destroy_symbol;  // void f(Interface*)
  const char* error_symbol;    // const char* f(): why the last make failed
  const char* export_macro;    // named in the "not a plugin" error
  const char* fingerprint;     // "interface fingerprint": named in the mismatch error
};

namespace detail {
// The untyped half, in plugin_library.cpp: the handle and the entry points as found.
class PluginHandle {
 public:
  // nullptr and `error` set when `path` cannot be used.
  static std::unique_ptr<PluginHandle> open(const std::string& path, const PluginKind& kind, uint64_t abi,
                                            std::string& error);
  ~PluginHandle();
  PluginHandle(const PluginHandle&) = delete;
  PluginHandle& operator=(const PluginHandle&) = delete;
  // The factory and destroyer as dlsym found them; the typed library casts them to its interface's
  // signatures (calling through the exact types the plugin defined them with).
  void* make_symbol() const { return make_; }
  void* destroy_symbol() const { return destroy_; }
  const char* last_error() const { return error_(); }
  const std::string& path() const { return path_; }

 private:
  PluginHandle() = default;
  void* handle_ = nullptr;
  void* make_ = nullptr;
  void* destroy_ = nullptr;
  const char* (*error_)() = nullptr;
  std::string path_;
};
}  // namespace detail

// A loaded plugin library of kind Traits; objects made from it keep it loaded (their deleter holds it).
template <class Traits>
class PluginLibrary : public std::enable_shared_from_this<PluginLibrary<Traits>> {
 public:
  using Interface = typename Traits::Interface;
  struct Deleter {
    std::shared_ptr<PluginLibrary> lib;
    void operator()(Interface* p) const {
      if (p != nullptr && lib) lib->destroy_(p);  // freed by the library that allocated it
    }
  };
  using Ptr = std::unique_ptr<Interface, Deleter>;

  // Opens `path` and checks its entry points and fingerprint; nullptr and `error` set when it
  // cannot be used (not loadable, not this kind of plugin, built against other headers).
  static std::shared_ptr<PluginLibrary> open(const std::string& path, std::string& error) {
    auto h = detail::PluginHandle::open(path, Traits::kind, Traits::abi(), error);
    if (!h) return nullptr;
    return std::shared_ptr<PluginLibrary>(new PluginLibrary(std::move(h)));
  }
  // An object from the plugin's factory; empty and `error` set when the factory refuses.
  Ptr make(const std::string& params_json, std::string& error) {
    Interface* p = make_(params_json.c_str());
    if (p == nullptr) {
      error = handle_->path() + ": " + handle_->last_error();
      return Ptr(nullptr, Deleter{nullptr});
    }
    return Ptr(p, Deleter{this->shared_from_this()});
  }
  const std::string& path() const { return handle_->path(); }

 private:
  explicit PluginLibrary(std::unique_ptr<detail::PluginHandle> h)
      : handle_(std::move(h)),
        make_(reinterpret_cast<Interface* (*)(const char*)>(handle_->make_symbol())),
        destroy_(reinterpret_cast<void (*)(Interface*)>(handle_->destroy_symbol())) {}
  std::unique_ptr<detail::PluginHandle> handle_;
  Interface* (*make_)(const char*);
  void (*destroy_)(Interface*);
};

}  // namespace bot4
