#pragma once
// A user strategy in C++: trade the touch imbalance. At every book message (book_only: no model
// needed) it reads the best bid and ask sizes; imbalance = bid_qty / (bid_qty + ask_qty).
// imbalance >= threshold -> target +qty_lots; <= 1 - threshold -> target -qty_lots; else hold.
// The router turns the target into a passive limit order at our touch, protected by a bracket.
#include <bot4/strategy/plugin.hpp>
#include <bot4/strategy/strategy.hpp>

struct ImbalanceParams {
  double threshold = 0.8;
  int64_t qty_lots = 1;
  int64_t stop_ticks = 10;
  int64_t target_ticks = 10;
};

class Imbalance final : public bot4::strategy::Strategy {
 public:
  explicit Imbalance(const ImbalanceParams& p) : p_(p) {}
  // The plugin factory's constructor: every parameter given must be read here.
  explicit Imbalance(const bot4::strategy::PluginParams& params)
      : Imbalance(ImbalanceParams{params.number("threshold", 0.8), params.integer("qty_lots", 1),
                                  params.integer("stop_ticks", 10), params.integer("target_ticks", 10)}) {
    if (p_.threshold <= 0.5 || p_.threshold > 1.0) throw std::invalid_argument("threshold: expected (0.5, 1]");
    if (p_.qty_lots <= 0) throw std::invalid_argument("qty_lots: expected > 0");
  }

  const char* name() const override { return "imbalance"; }
  bool book_only() const override { return true; }

  void on_decision(bot4::strategy::DecisionContext& ctx) override {
    ctx.signal = 0;
    if (!ctx.top.two_sided() || ctx.flattening) return;
    const double total = static_cast<double>(ctx.top.bid_qty + ctx.top.ask_qty);
    const double imbalance = static_cast<double>(ctx.top.bid_qty) / total;
    if (imbalance >= p_.threshold) ctx.signal = 1;
    else if (imbalance <= 1.0 - p_.threshold) ctx.signal = -1;
    if (ctx.signal == 0) return;
    bot4::strategy::TargetSpec t;
    t.position_lots = ctx.signal * p_.qty_lots;
    t.policy = bot4::strategy::ExecPolicy::Passive;
    t.bracket = true;
    t.stop_ticks = p_.stop_ticks;
    t.target_ticks = p_.target_ticks;
    if (ctx.exec->target(t).ok) ++targets_sent_;
  }
  void on_fill(const bot4::strategy::FillInfo&) override { ++fills_; }

  uint64_t targets_sent() const { return targets_sent_; }
  uint64_t fills() const { return fills_; }

 private:
  ImbalanceParams p_;
  uint64_t targets_sent_ = 0;
  uint64_t fills_ = 0;
};
