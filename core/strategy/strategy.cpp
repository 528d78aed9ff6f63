#include "strategy/strategy.hpp"

namespace bot4::strategy {

const char* decision_action_name(DecisionAction a) noexcept {
  switch (a) {
    case DecisionAction::None: return "none";
    case DecisionAction::OrderSent: return "order_sent";
    case DecisionAction::CancelSent: return "cancel_sent";
    case DecisionAction::CloseSent: return "close_sent";
    case DecisionAction::Rejected: return "rejected";
  }
  return "?";
}

}  // namespace bot4::strategy
