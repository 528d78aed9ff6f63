#pragma once
// Position sizing (METHODS §7): fractional Kelly for a binary bet, volatility targeting,
// parametric VaR cap, portfolio-heat room and a crisis override.
//
//   size = f(p) × vol_scale × heat_room × min(kelly, symbol cap, leverage cap, VaR cap) × crisis
//
// then |size| is clamped to min(symbol cap, leverage cap, VaR cap): every factor except vol_scale
// is ≤ 1, and vol_scale (≤ max_vol_scale, may be > 1) must not lift a position past a hard limit.
//
// Units: the result is a signed position in risk units = notional / equity (fraction of equity;
// + long, − short). Floats are allowed here because these are sizes in risk units (DESIGN §3);
// to_lots() turns one into integer lots. Nothing throws: a status says why the size is 0.
#include <cstdint>
#include <span>

#include "risk/risk_config.hpp"

namespace bot4::risk {

// --- Formulas of METHODS §7, exposed so they can be tested against the hand vectors. ---

// §7.1 Kelly for a binary bet: win +b per unit staked, lose −1. f* = p − (1−p)/b (may be < 0).
double kelly_binary(double p, double b) noexcept;
// §7.1 with a loss of −a per unit: f* = p/a − (1−p)/b.
double kelly_binary(double p, double a, double b) noexcept;
// §7.1 growth rate g(f) = p ln(1+fb) + (1−p) ln(1−f).
double kelly_growth(double f, double p, double b) noexcept;
// §7.2 w = min(L_max, σ_target / (σ_period · sqrt(periods_per_year))); σ_target annualized.
double vol_target_weight(double target_vol_annual, double vol_per_period, double periods_per_year,
                         double max_scale) noexcept;
// Standard normal quantile Φ⁻¹(prob), prob in (0, 1) (Acklam + one Newton step, ~1e-15).
double normal_quantile(double prob) noexcept;
// §7.3 parametric normal, losses positive: VaR = −(μ − z_β σ); ES = −μ + σ φ(z_β)/(1−β).
double var_normal(double mu, double sigma, double beta) noexcept;
double es_normal(double mu, double sigma, double beta) noexcept;
// §7.3 historical, the skfolio 1.12.2 convention pinned by METHODS: VaR = −x_(⌊(1−β)n⌋+1) of the
// ascending returns; CVaR = Rockafellar–Uryasev fractional mean of the worst (1−β)n losses.
// Return NaN on empty input. `returns` is copied to a scratch buffer (not a hot-path call).
double var_historical(std::span<const double> returns, double beta);
double cvar_historical(std::span<const double> returns, double beta);
// §7.4 heat = Σ |entry − stop| · qty · multiplier / equity (fraction of equity). Prices and qty
// in any consistent units whose product with multiplier is currency.
struct HeatPosition {
  double entry = 0.0;
  double stop = 0.0;
  double qty = 0.0;
  double multiplier = 1.0;
};
double portfolio_heat(std::span<const HeatPosition> positions, double equity) noexcept;

// --- The sizer ---

enum class SizeStatus : uint8_t {
  Ok = 0,
  BadInput,      // p outside [0,1], non-finite or non-positive vol, ...
  NoEdge,        // |2p−1| below edge_threshold: f(p) = 0
  NoKellyEdge,   // f* ≤ 0 for the chosen side: no bet
  NoHeatRoom,    // heat ≥ max_heat
  NoCapacity,    // a cap (leverage left, VaR, per-symbol) is 0
};
const char* size_status_name(SizeStatus s) noexcept;

struct SizingInput {
  double p = 0.5;               // calibrated P(up move), [0, 1]
  double current_vol = 0.0;     // σ̂ of returns per period (e.g. daily), built from data up to t−1
  double heat = 0.0;            // current portfolio heat, fraction of equity (§7.4)
  double gross_exposure = 0.0;  // |notional| already held in other symbols, fraction of equity
  double correlation = 0.0;     // correlation input for the crisis override, [-1, 1]
  bool crisis_regime = false;   // regime model says crisis
};

struct SizeResult {
  SizeStatus status = SizeStatus::BadInput;
  double size = 0.0;        // signed, fraction of equity (+ long, − short)
  double edge_scale = 0.0;  // f(p) in [0, 1]
  double kelly = 0.0;       // c · f*, clamped at 0
  double vol_scale = 0.0;   // min(L_max, σ_target / σ̂_annual)
  double heat_room = 0.0;   // max(0, 1 − heat / max_heat)
  double var_cap = 0.0;     // var_limit / (z_β σ̂_period): largest position whose VaR fits
  double cap = 0.0;         // min(kelly, max_symbol_fraction, leverage room, var_cap)
  double crisis = 1.0;      // crisis_multiplier when the override applies, else 1
};

class PositionSizer {
 public:
  explicit PositionSizer(const SizingConfig& cfg) noexcept;
  const SizingConfig& config() const noexcept { return cfg_; }
  // A live config change (control plane), used from the next size() on.
  void set_config(const SizingConfig& cfg) noexcept;
  // f(p): 0 below the threshold, then linear from 0 at the threshold to 1 at |2p−1| = 1.
  double edge_scale(double p) const noexcept;
  SizeResult size(const SizingInput& in) const noexcept;

 private:
  SizingConfig cfg_;
  double z_ = 0.0;  // z_β for var_confidence, computed once
};

// Signed lots for a risk-unit size: trunc(size · equity / (price · lot_value)), rounding toward 0
// so a size never grows by rounding. lot_value = currency per (price unit × lot). 0 on bad input.
int64_t to_lots(double size, double equity, double price, double lot_value) noexcept;

}  // namespace bot4::risk
