#include "sim/sim_params.hpp"

namespace bot4::sim {

bool parse_queue_model(const std::string& name, QueueModelKind& kind) {
  if (name == "risk_averse") kind = QueueModelKind::RiskAverse;
  else if (name == "power") kind = QueueModelKind::PowerProb;
  else if (name == "log") kind = QueueModelKind::LogProb;
  else return false;
  return true;
}

bool parse_sim_mode(const std::string& name, SimMode& mode) {
  if (name == "auto") mode = SimMode::Auto;
  else if (name == "l2") mode = SimMode::L2;
  else if (name == "l3") mode = SimMode::L3;
  else return false;
  return true;
}

bool to_sim_config(const SimParams& p, SimConfig& out, std::string& error) {
  out.latency.entry_ns = p.entry_latency_ns;
  out.latency.response_ns = p.response_latency_ns;
  out.latency.align_clocks = p.align_clocks;
  out.fees.maker_bps = p.maker_bps;
  out.fees.taker_bps = p.taker_bps;
  out.queue.power = p.queue_power;
  if (!parse_queue_model(p.queue_model, out.queue.kind)) {
    error = "sim.queue_model: expected risk_averse, power or log, got " + p.queue_model;
    return false;
  }
  return true;
}

}  // namespace bot4::sim
