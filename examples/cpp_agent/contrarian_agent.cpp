// A C++ user signal agent (core/portfolio/agent_plugin.hpp): fade the micro-price offset.
// mu = -scale x microprice_offset (bp), a fixed uncertainty sigma, quantiles mu -+ 1.28 sigma,
// confidence min(1, |mu| / 10); no view where the offset is undefined.
// Build: see CMakeLists.txt here; use it from Python with
//   bot4.portfolio.user_agents.CppAgent("contrarian", "libcontrarian_agent.so", {"scale": 0.5})
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "portfolio/agent_plugin.hpp"

class ContrarianAgent : public bot4::portfolio::UserSignalAgent {
 public:
  explicit ContrarianAgent(const bot4::strategy::PluginParams& p)
      : scale_(p.number("scale", 0.5)), sigma_(p.number("sigma", 5.0)),
        column_(p.string("column", "microprice_offset")) {
    if (!(sigma_ > 0)) throw std::invalid_argument("sigma must be > 0");
  }

  void bind(const std::vector<std::string>& names) override {
    const auto it = std::find(names.begin(), names.end(), column_);
    if (it == names.end()) throw std::invalid_argument("the rows have no column '" + column_ + "'");
    col_ = static_cast<size_t>(it - names.begin());
  }

  bot4::portfolio::AgentView evaluate(const double* row, size_t) const override {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    const double off = row[col_];
    if (!std::isfinite(off)) return {nan, nan, {nan, nan, nan}, 0.0, -1};
    const double mu = -scale_ * off;
    const double w = 1.28 * sigma_;
    return {mu, sigma_, {mu - w, mu, mu + w}, std::min(1.0, std::fabs(mu) / 10.0), 0};
  }

 private:
  double scale_, sigma_;
  std::string column_;
  size_t col_ = 0;
};

BOT4_AGENT_PLUGIN(ContrarianAgent)
