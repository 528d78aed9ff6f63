#pragma once
// The venue simulator's parameters as a config section, declared once (see common/config_fields.hpp).
#include <cstdint>
#include <string>

#include "common/config_fields.hpp"
#include "sim/venue_simulator.hpp"

namespace bot4::sim {

#define BOT4_SIM_FIELDS(X)                                                                                      \
  X(int64_t, entry_latency_ns, 100'000, ge(0), any, "ns", "order entry: local send -> venue arrival")           \
  X(int64_t, response_latency_ns, 100'000, ge(0), any, "ns", "venue event -> local receipt (ack, fill, reject)") \
  X(bool, align_clocks, true, any, any, "", "learn the local - exchange clock offset from the data")            \
  X(double, maker_bps, 2.0, any, any, "bp", "fee on resting (maker) fills, of notional (negative: rebate)")      \
  X(double, taker_bps, 5.0, any, any, "bp", "fee on aggressive (taker) fills, of notional")                      \
  X(std::string, queue_model, "risk_averse", any, any, "", "queue position model: risk_averse, power or log")    \
  X(double, queue_power, 2.0, gt(0), any, "", "exponent of the power / log queue models")

BOT4_CONFIG_STRUCT(SimParams, BOT4_SIM_FIELDS)

bool parse_queue_model(const std::string& name, QueueModelKind& kind);
bool parse_sim_mode(const std::string& name, SimMode& mode);
// The simulator config of these parameters; false (with a message) on an unknown queue model.
bool to_sim_config(const SimParams& p, SimConfig& out, std::string& error);

}  // namespace bot4::sim
