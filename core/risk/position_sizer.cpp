#include "risk/position_sizer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace bot4::risk {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

double normal_pdf(double x) noexcept { return kInvSqrt2Pi * std::exp(-0.5 * x * x); }
double normal_cdf(double x) noexcept { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// k = (1−β)n with a small tolerance: (1−0.9)·10 is 0.99999999999999978 in binary floating point,
// and the pinned convention means k = 1 there.
double tail_count(double beta, size_t n) noexcept {
  return (1.0 - beta) * static_cast<double>(n) + 1e-9;
}
}  // namespace

double kelly_binary(double p, double b) noexcept { return p - (1.0 - p) / b; }

double kelly_binary(double p, double a, double b) noexcept { return p / a - (1.0 - p) / b; }

double kelly_growth(double f, double p, double b) noexcept {
  return p * std::log1p(f * b) + (1.0 - p) * std::log1p(-f);
}

double vol_target_weight(double target_vol_annual, double vol_per_period, double periods_per_year,
                         double max_scale) noexcept {
  const double annual = vol_per_period * std::sqrt(periods_per_year);
  if (!(annual > 0.0) || !std::isfinite(annual)) return 0.0;
  return std::min(max_scale, target_vol_annual / annual);
}

double normal_quantile(double prob) noexcept {
  if (!(prob > 0.0 && prob < 1.0)) return kNaN;
  // Acklam's rational approximation (rel. error 1.15e-9), then one Newton step on Φ.
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double lo = 0.02425;
  double x;
  if (prob < lo) {
    const double q = std::sqrt(-2.0 * std::log(prob));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  } else if (prob <= 1.0 - lo) {
    const double q = prob - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  } else {
    const double q = std::sqrt(-2.0 * std::log1p(-prob));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  }
  const double e = normal_cdf(x) - prob;
  return x - e / normal_pdf(x);
}

double var_normal(double mu, double sigma, double beta) noexcept {
  return -(mu - normal_quantile(beta) * sigma);
}

double es_normal(double mu, double sigma, double beta) noexcept {
  return -mu + sigma * normal_pdf(normal_quantile(beta)) / (1.0 - beta);
}

double var_historical(std::span<const double> returns, double beta) {
  if (returns.empty()) return kNaN;
  std::vector<double> x(returns.begin(), returns.end());
  std::sort(x.begin(), x.end());
  const auto idx = std::min(static_cast<size_t>(std::floor(tail_count(beta, x.size()))), x.size() - 1);
  return -x[idx];  // x_(⌊k⌋+1) in 1-based order statistics
}

double cvar_historical(std::span<const double> returns, double beta) {
  if (returns.empty()) return kNaN;
  std::vector<double> x(returns.begin(), returns.end());
  std::sort(x.begin(), x.end());
  const double k = std::min(tail_count(beta, x.size()) - 1e-9, static_cast<double>(x.size()));
  if (!(k > 0.0)) return -x.front();  // β → 1: the single worst loss
  const auto whole = static_cast<size_t>(std::floor(k + 1e-9));
  double sum = 0.0;
  for (size_t i = 0; i < whole && i < x.size(); ++i) sum += -x[i];
  const double frac = k - static_cast<double>(whole);
  if (frac > 1e-12 && whole < x.size()) sum += frac * -x[whole];
  return sum / k;
}

double portfolio_heat(std::span<const HeatPosition> positions, double equity) noexcept {
  if (!(equity > 0.0)) return kNaN;
  double risk = 0.0;
  for (const auto& p : positions) risk += std::fabs(p.entry - p.stop) * std::fabs(p.qty) * p.multiplier;
  return risk / equity;
}

const char* size_status_name(SizeStatus s) noexcept {
  switch (s) {
    case SizeStatus::Ok: return "ok";
    case SizeStatus::BadInput: return "bad_input";
    case SizeStatus::NoEdge: return "no_edge";
    case SizeStatus::NoKellyEdge: return "no_kelly_edge";
    case SizeStatus::NoHeatRoom: return "no_heat_room";
    case SizeStatus::NoCapacity: return "no_capacity";
  }
  return "unknown";
}

PositionSizer::PositionSizer(const SizingConfig& cfg) noexcept
    : cfg_(cfg), z_(normal_quantile(cfg.var_confidence)) {}

void PositionSizer::set_config(const SizingConfig& cfg) noexcept {
  cfg_ = cfg;
  z_ = normal_quantile(cfg.var_confidence);
}

double PositionSizer::edge_scale(double p) const noexcept {
  const double edge = std::fabs(2.0 * p - 1.0);
  if (!(edge >= cfg_.edge_threshold) || edge == 0.0) return 0.0;
  return std::clamp((edge - cfg_.edge_threshold) / (1.0 - cfg_.edge_threshold), 0.0, 1.0);
}

SizeResult PositionSizer::size(const SizingInput& in) const noexcept {
  SizeResult r;
  if (!(in.p >= 0.0 && in.p <= 1.0) || !(in.current_vol > 0.0) || !std::isfinite(in.current_vol) ||
      !std::isfinite(in.heat) || !std::isfinite(in.gross_exposure) || !std::isfinite(in.correlation)) {
    r.status = SizeStatus::BadInput;
    return r;
  }
  // Direction from p; the win probability of the chosen side is max(p, 1−p).
  const double side = in.p >= 0.5 ? 1.0 : -1.0;
  const double q = std::max(in.p, 1.0 - in.p);

  r.edge_scale = edge_scale(in.p);
  r.kelly = std::max(0.0, cfg_.kelly_fraction * kelly_binary(q, cfg_.payoff_ratio));
  r.vol_scale = vol_target_weight(cfg_.target_vol, in.current_vol, cfg_.periods_per_year, cfg_.max_vol_scale);
  r.heat_room = cfg_.max_heat > 0.0 ? std::max(0.0, 1.0 - in.heat / cfg_.max_heat) : 0.0;
  // VaR of a position x (fraction of equity) over one period, μ = 0: x · z_β · σ̂. Cap so it ≤ var_limit.
  r.var_cap = cfg_.var_limit / (z_ * in.current_vol);
  const double leverage_room = std::max(0.0, cfg_.max_leverage - std::fabs(in.gross_exposure));
  r.cap = std::min({r.kelly, cfg_.max_symbol_fraction, leverage_room, r.var_cap});
  r.crisis = (in.crisis_regime || in.correlation > cfg_.crisis_correlation) ? cfg_.crisis_multiplier : 1.0;

  if (r.edge_scale <= 0.0) {
    r.status = SizeStatus::NoEdge;
  } else if (r.kelly <= 0.0) {
    r.status = SizeStatus::NoKellyEdge;
  } else if (r.heat_room <= 0.0) {
    r.status = SizeStatus::NoHeatRoom;
  } else if (!(r.cap > 0.0) || !(r.vol_scale > 0.0) || !(r.crisis > 0.0)) {
    r.status = SizeStatus::NoCapacity;
  } else {
    r.status = SizeStatus::Ok;
    // The formula of the spec; then the hard limits clamp the final position, because
    // vol_scale may exceed 1 (up to max_vol_scale) and would otherwise push a position past
    // the per-symbol, leverage or VaR limit that min() was meant to enforce.
    const double raw = r.edge_scale * r.vol_scale * r.heat_room * r.cap * r.crisis;
    const double hard = std::min({cfg_.max_symbol_fraction, leverage_room, r.var_cap});
    r.size = side * std::min(raw, hard);
  }
  return r;
}

int64_t to_lots(double size, double equity, double price, double lot_value) noexcept {
  const double denom = price * lot_value;
  if (!(denom > 0.0) || !std::isfinite(size) || !std::isfinite(equity)) return 0;
  const double lots = std::trunc(size * equity / denom);
  if (std::fabs(lots) > 9.0e18) return 0;
  return static_cast<int64_t>(lots);
}

}  // namespace bot4::risk
