#pragma once
// A strategy made of C function pointers and an opaque `self`: how code that cannot subclass a
// C++ interface (a Cython cdef class, C) plugs into the engine. The engine calls the pointers
// directly from its loop, without the GIL: a Cython strategy's trampolines must be
// `noexcept nogil` (bot4/strategy_api.pxd declares them so). Whoever fills the table keeps
// `self` alive for as long as the strategy is used.
#include <cstdint>
#include <string>

#include "strategy/plugin.hpp"
#include "strategy/strategy.hpp"

namespace bot4::strategy {

struct StrategyCallbacks {
  uint64_t abi = 0;  // plugin_abi() of the headers the caller was compiled with
  void* self = nullptr;
  void (*on_decision)(void* self, DecisionContext* ctx) = nullptr;  // required
  void (*on_fill)(void* self, const FillInfo* fill) = nullptr;      // optional
  void (*on_reject)(void* self, const RejectInfo* reject) = nullptr;  // optional
  bool book_only = false;
  bool holds_inventory = false;
};

class CallbackStrategy final : public Strategy {
 public:
  CallbackStrategy(const StrategyCallbacks& cb, std::string name) : cb_(cb), name_(std::move(name)) {}
  const char* name() const override { return name_.c_str(); }
  void on_decision(DecisionContext& ctx) override { cb_.on_decision(cb_.self, &ctx); }
  void on_fill(const FillInfo& f) override {
    if (cb_.on_fill) cb_.on_fill(cb_.self, &f);
  }
  void on_reject(const RejectInfo& r) override {
    if (cb_.on_reject) cb_.on_reject(cb_.self, &r);
  }
  bool book_only() const override { return cb_.book_only; }
  bool holds_inventory() const override { return cb_.holds_inventory; }

  // Empty when the table can be used, else why not.
  static std::string check(const StrategyCallbacks& cb) {
    if (cb.abi != plugin_abi())
      return "the strategy was compiled against other bot4 headers (interface fingerprint " + std::to_string(cb.abi) +
             ", this bot4 " + std::to_string(plugin_abi()) + "): rebuild it";
    if (cb.on_decision == nullptr) return "the strategy's callback table has no on_decision";
    return {};
  }

 private:
  StrategyCallbacks cb_;
  std::string name_;
};

}  // namespace bot4::strategy
