// bot4._core.orders: the order manager (core/orders/). Glue only: config dict -> struct (unknown
// keys rejected with bot4.errors.ConfigError), status codes -> their names, events -> a numpy
// structured array (fresh copy, owned by the array).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "orders/order_manager.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using orders::IntentKind;
using orders::Order;
using orders::OrderEvent;
using orders::OrderIntent;
using orders::OrderManager;
using orders::OrderManagerConfig;
using orders::OrderType;
using orders::Reason;
using orders::StpPolicy;

[[noreturn]] void config_error(const std::string& msg) {
  py::object cls = py::module_::import("bot4.errors").attr("ConfigError");
  PyErr_SetString(cls.ptr(), msg.c_str());
  throw py::error_already_set();
}

StpPolicy stp_from(const std::string& s) {
  if (s == "cancel_new") return StpPolicy::CancelNew;
  if (s == "cancel_resting") return StpPolicy::CancelResting;
  if (s == "cancel_both") return StpPolicy::CancelBoth;
  if (s == "decrement_both") return StpPolicy::DecrementBoth;
  config_error("order manager config: unknown stp_policy '" + s +
               "' (cancel_new, cancel_resting, cancel_both, decrement_both)");
}

OrderManagerConfig config_from(const py::dict& d) {
  OrderManagerConfig c;
  // From Python, cancels wait for the venue's confirmation unless asked otherwise (the C++
  // default stays legacy only until the engine forwards confirmations).
  c.confirm_cancels = true;
  for (auto item : d) {
    const std::string k = py::str(item.first).cast<std::string>();
    py::handle v = item.second;
    try {
      if (k == "dedup_capacity") c.dedup_capacity = v.cast<std::size_t>();
      else if (k == "dedup_ttl_ns") c.dedup_ttl_ns = v.cast<int64_t>();
      else if (k == "stp_policy") c.stp = stp_from(v.cast<std::string>());
      else if (k == "stop_distance_ticks") c.stop_distance_ticks = v.cast<int64_t>();
      else if (k == "target_distance_ticks") c.target_distance_ticks = v.cast<int64_t>();
      else if (k == "confirm_cancels") c.confirm_cancels = v.cast<bool>();
      else if (k == "retain_closed") c.retain_closed = v.cast<std::size_t>();
      else config_error("order manager config: unknown key '" + k + "'");
    } catch (const py::cast_error&) {
      config_error("order manager config: bad type for '" + k + "'");
    }
  }
  if (c.dedup_capacity == 0) config_error("order manager config: dedup_capacity must be > 0");
  if (c.dedup_ttl_ns <= 0) config_error("order manager config: dedup_ttl_ns must be > 0");
  if (c.stop_distance_ticks < 0 || c.target_distance_ticks < 0)
    config_error("order manager config: distances must be >= 0 ticks");
  return c;
}

Side side_from(const std::string& s) {
  if (s == "buy") return Side::Bid;
  if (s == "sell") return Side::Ask;
  throw py::value_error("side must be 'buy' or 'sell', got '" + s + "'");
}

const char* state_name(orders::OrderState s) {
  static const char* names[] = {"new",       "acknowledged", "partially_filled", "filled",
                                "cancelled", "rejected",     "expired",          "pending_cancel"};
  return names[static_cast<int>(s)];
}
const char* role_name(orders::OrderRole r) {
  static const char* names[] = {"single", "entry", "stop", "target", "oco", "oto_parent", "oto_child"};
  return names[static_cast<int>(r)];
}
const char* type_name(OrderType t) {
  static const char* names[] = {"limit", "market", "stop"};
  return names[static_cast<int>(t)];
}
OrderType type_from(const std::string& s) {
  if (s == "limit") return OrderType::Limit;
  if (s == "market") return OrderType::Market;
  if (s == "stop") return OrderType::Stop;
  throw py::value_error("order type must be 'limit', 'market' or 'stop', got '" + s + "'");
}
const char* group_kind_name(orders::GroupKind k) {
  static const char* names[] = {"bracket", "oco", "oto"};
  return names[static_cast<int>(k)];
}

// (side, type, price, qty) with price None for a market order; qty optional (OTO child).
orders::LegSpec leg_from(const py::tuple& t, bool need_qty) {
  if (t.size() != (need_qty ? 4u : 3u))
    throw py::value_error(need_qty ? "order spec must be (side, type, price, qty)" : "child spec must be (side, type, price)");
  orders::LegSpec l;
  l.side = side_from(t[0].cast<std::string>());
  l.type = type_from(t[1].cast<std::string>());
  l.price_ticks = t[2].is_none() ? 0 : t[2].cast<int64_t>();
  l.qty_lots = need_qty ? t[3].cast<int64_t>() : 0;
  return l;
}

py::dict result_dict(const orders::SubmitResult& r) {
  py::dict d;
  d["status"] = orders::reason_name(r.status);
  d["order_id"] = r.order_id;
  d["duplicate"] = r.duplicate;
  return d;
}

py::object order_dict(const Order* o) {
  if (!o) return py::none();
  py::dict d;
  d["order_id"] = o->order_id;
  d["client_id"] = o->client_id;
  d["side"] = orders::is_buy(o->side) ? "buy" : "sell";
  d["type"] = type_name(o->type);
  d["state"] = state_name(o->state);
  d["role"] = role_name(o->role);
  d["reduce_only"] = o->reduce_only;
  d["price"] = o->price_ticks;
  d["qty"] = o->qty_lots;
  d["filled"] = o->filled_lots;
  d["fill_notional"] = o->fill_notional;
  d["group_id"] = o->group_id;
  d["parent_id"] = o->parent_id;
  d["oco_peer_id"] = o->oco_peer_id;
  d["acked"] = o->acked;
  d["held"] = o->held;
  return d;
}

struct PyOrderManager {
  OrderManager m;
  explicit PyOrderManager(const py::dict& cfg) : m(config_from(cfg)) {}
};

py::object group_dict(const PyOrderManager& s, uint64_t group_id) {
  const orders::BracketLegs* g = s.m.group(group_id);
  if (!g) return py::none();
  auto id_or_none = [](uint64_t id) { return id ? py::object(py::int_(id)) : py::object(py::none()); };
  py::dict d;
  d["kind"] = group_kind_name(g->kind);
  d["entry"] = g->entry;
  d["stop"] = id_or_none(g->stop);
  d["target"] = id_or_none(g->target);
  d["second"] = id_or_none(g->second);
  d["stop_distance"] = g->stop_distance;
  d["target_distance"] = g->target_distance;
  d["exited"] = g->exited_lots;
  d["open"] = g->kind == orders::GroupKind::Bracket ? s.m.bracket_open(*g) : 0;
  d["halted"] = g->halted;
  d["done"] = g->done;
  d["members"] = g->members;
  return d;
}

}  // namespace

void bind_orders(py::module_& m) {
  PYBIND11_NUMPY_DTYPE(OrderEvent, seq, ts_ns, order_id, client_id, price_ticks, qty_lots, filled_lots, kind,
                       state, side, role, reason);
  m.attr("EVENT_KINDS") = py::make_tuple("new", "ack", "fill", "cancel", "reject", "replace", "expire");
  m.attr("ORDER_STATES") =
      py::make_tuple("new", "acknowledged", "partially_filled", "filled", "cancelled", "rejected", "expired",
                     "pending_cancel");
  m.attr("event_dtype") = py::dtype::of<OrderEvent>();
  py::list reasons;
  for (int r = 0; r < static_cast<int>(Reason::Count); ++r) reasons.append(orders::reason_name(static_cast<Reason>(r)));
  m.attr("REASONS") = py::tuple(reasons);

  py::class_<PyOrderManager>(m, "OrderManager")
      .def(py::init<const py::dict&>(), py::arg("config") = py::dict())
      .def(
          "submit_limit",
          [](PyOrderManager& s, uint64_t cid, const std::string& side, int64_t price, int64_t qty, int64_t now,
             bool reduce_only) {
            OrderIntent in;
            in.kind = IntentKind::Limit;
            in.client_id = cid;
            in.side = side_from(side);
            in.price_ticks = price;
            in.qty_lots = qty;
            in.reduce_only = reduce_only;
            return result_dict(s.m.submit(in, now));
          },
          py::arg("client_id"), py::arg("side"), py::arg("price"), py::arg("qty"), py::arg("now") = 0,
          py::arg("reduce_only") = false)
      .def(
          "submit_market",
          [](PyOrderManager& s, uint64_t cid, const std::string& side, int64_t qty, int64_t now, bool reduce_only) {
            OrderIntent in;
            in.kind = IntentKind::Market;
            in.client_id = cid;
            in.side = side_from(side);
            in.qty_lots = qty;
            in.reduce_only = reduce_only;
            return result_dict(s.m.submit(in, now));
          },
          py::arg("client_id"), py::arg("side"), py::arg("qty"), py::arg("now") = 0, py::arg("reduce_only") = false)
      .def(
          "submit_bracket",
          [](PyOrderManager& s, uint64_t cid, const std::string& side, int64_t qty, py::object price, int64_t now,
             int64_t stop_distance, int64_t target_distance) {
            OrderIntent in;
            in.kind = IntentKind::Bracket;
            in.client_id = cid;
            in.side = side_from(side);
            in.qty_lots = qty;
            in.entry_type = price.is_none() ? OrderType::Market : OrderType::Limit;
            in.price_ticks = price.is_none() ? 0 : price.cast<int64_t>();
            in.stop_distance_ticks = stop_distance;
            in.target_distance_ticks = target_distance;
            return result_dict(s.m.submit(in, now));
          },
          py::arg("client_id"), py::arg("side"), py::arg("qty"), py::arg("price") = py::none(), py::arg("now") = 0,
          py::arg("stop_distance") = -1, py::arg("target_distance") = -1,
          "Entry (limit at `price`, market if None) OTO -> OCO(stop, target); distances in ticks, -1 = config.")
      .def(
          "submit_oco",
          [](PyOrderManager& s, uint64_t cid, const py::tuple& first, const py::tuple& second, int64_t now,
             bool reduce_only) {
            const orders::LegSpec a = leg_from(first, true);
            OrderIntent in;
            in.kind = IntentKind::Oco;
            in.client_id = cid;
            in.side = a.side;
            in.entry_type = a.type;
            in.price_ticks = a.price_ticks;
            in.qty_lots = a.qty_lots;
            in.reduce_only = reduce_only;
            in.second = leg_from(second, true);
            return result_dict(s.m.submit(in, now));
          },
          py::arg("client_id"), py::arg("first"), py::arg("second"), py::arg("now") = 0, py::arg("reduce_only") = false,
          "Two orders, each (side, type, price, qty) with type limit|market|stop (price None for market); a fill "
          "on one reduces the other by the same quantity. order_id of the result is the first order (= group id).")
      .def(
          "submit_oto",
          [](PyOrderManager& s, uint64_t cid, const py::tuple& parent, const py::tuple& child, int64_t now,
             bool reduce_only) {
            const orders::LegSpec p = leg_from(parent, true);
            OrderIntent in;
            in.kind = IntentKind::Oto;
            in.client_id = cid;
            in.side = p.side;
            in.entry_type = p.type;
            in.price_ticks = p.price_ticks;
            in.qty_lots = p.qty_lots;
            in.reduce_only = reduce_only;
            in.second = leg_from(child, false);
            return result_dict(s.m.submit(in, now));
          },
          py::arg("client_id"), py::arg("parent"), py::arg("child"), py::arg("now") = 0, py::arg("reduce_only") = false,
          "Parent (side, type, price, qty) plus a child (side, limit|stop, price) released on the parent's first "
          "fill and sized to its filled quantity.")
      .def("request_cancel",
           [](PyOrderManager& s, uint64_t id, int64_t ts) { return orders::reason_name(s.m.request_cancel(id, ts)); },
           py::arg("order_id"), py::arg("ts") = 0,
           "Ask the venue to cancel: pending_cancel until on_cancel confirms (fills still count).")
      .def("on_ack", [](PyOrderManager& s, uint64_t id, int64_t ts) { return orders::reason_name(s.m.on_ack(id, ts)); },
           py::arg("order_id"), py::arg("ts") = 0)
      .def(
          "on_fill",
          [](PyOrderManager& s, uint64_t id, int64_t qty, int64_t price, int64_t ts) {
            return orders::reason_name(s.m.on_fill(id, qty, price, ts));
          },
          py::arg("order_id"), py::arg("qty"), py::arg("price"), py::arg("ts") = 0)
      .def("on_cancel", [](PyOrderManager& s, uint64_t id, int64_t ts) { return orders::reason_name(s.m.on_cancel(id, ts)); },
           py::arg("order_id"), py::arg("ts") = 0)
      .def("on_reject", [](PyOrderManager& s, uint64_t id, int64_t ts) { return orders::reason_name(s.m.on_reject(id, ts)); },
           py::arg("order_id"), py::arg("ts") = 0)
      .def("on_expire", [](PyOrderManager& s, uint64_t id, int64_t ts) { return orders::reason_name(s.m.on_expire(id, ts)); },
           py::arg("order_id"), py::arg("ts") = 0)
      .def("cancel_all", [](PyOrderManager& s, int64_t ts) { return s.m.cancel_all(ts); }, py::arg("ts") = 0)
      .def("order", [](const PyOrderManager& s, uint64_t id) { return order_dict(s.m.find(id)); }, py::arg("order_id"))
      .def("order_state",
           [](const PyOrderManager& s, uint64_t id) -> py::object {
             const Order* o = s.m.find(id);
             return o ? py::object(py::str(state_name(o->state))) : py::object(py::none());
           },
           py::arg("order_id"))
      .def("order_ids", [](const PyOrderManager& s) { return s.m.order_ids(); })
      .def("orders",
           [](const PyOrderManager& s) {
             py::list out;
             for (uint64_t id : s.m.order_ids()) out.append(order_dict(s.m.find(id)));
             return out;
           })
      .def("legs", &group_dict, py::arg("group_id"),
           "The contingent group keyed by its first order's id (bracket entry, OCO first order, OTO parent).")
      .def("group", &group_dict, py::arg("group_id"))
      .def_property_readonly("live_orders", [](const PyOrderManager& s) { return s.m.live_orders(); })
      .def_property_readonly("stored_orders", [](const PyOrderManager& s) { return s.m.stored_orders(); })
      .def_property_readonly("stored_groups", [](const PyOrderManager& s) { return s.m.live_groups(); })
      .def_property_readonly("position", [](const PyOrderManager& s) { return s.m.position(); })
      .def_property_readonly("last_seq", [](const PyOrderManager& s) { return s.m.state_machine().last_seq(); })
      .def("counters",
           [](const PyOrderManager& s) {
             py::dict d;
             const auto& c = s.m.state_machine().counters();
             for (int r = 1; r < static_cast<int>(Reason::Count); ++r)
               d[orders::reason_name(static_cast<Reason>(r))] = c[static_cast<std::size_t>(r)];
             d["stp_actions"] = s.m.stp_actions();
             d["held_releases"] = s.m.held_releases();
             d["evicted"] = s.m.evicted();
             d["dedup_evictions"] = s.m.dedup().evictions();
             d["dedup_expirations"] = s.m.dedup().expirations();
             d["dedup_size"] = s.m.dedup().size();
             return d;
           })
      .def(
          "drain_events",
          [](PyOrderManager& s) {
            std::vector<OrderEvent> ev = s.m.drain_events();
            py::array_t<OrderEvent> out(static_cast<py::ssize_t>(ev.size()));
            if (!ev.empty()) std::memcpy(out.mutable_data(), ev.data(), ev.size() * sizeof(OrderEvent));
            return out;
          },
          "Pending order events as a fresh numpy structured array (dtype orders.event_dtype).");
}

}  // namespace bot4::ext
