#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <vector>

#include "book/book_set.hpp"
#include "book/l2_book.hpp"
#include "book/l3_book.hpp"
#include "buffers.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using book::BookCounters;
using book::BookSet;
using book::BookStatus;
using book::L2Book;
using book::L2BookConfig;

py::dict counters_dict(const BookCounters& c) {
  py::dict out;
  out["events"] = c.events;
  out["messages"] = c.messages;
  out["crossed_pruned_levels"] = c.crossed_pruned_levels;
  out["recenters"] = c.recenters;
  py::dict by_status;
  for (size_t i = 0; i < c.by_status.size(); ++i)
    by_status[py::str(std::string(book::kBookStatusNames[i]))] = c.by_status[i];
  out["by_status"] = by_status;
  out["rejected"] = c.rejected();
  return out;
}

Side parse_side(const std::string& side) {
  if (side == "bid" || side == "b" || side == "buy") return Side::Bid;
  if (side == "ask" || side == "a" || side == "sell") return Side::Ask;
  throw py::value_error("side must be 'bid' or 'ask', got '" + side + "'");
}

// Runs `apply(events, n, record_at, n_record, tops)` without the GIL; returns the recorded tops
// (or None when no positions were requested).
template <typename Record = BookEvent, typename Apply>
py::object apply_with_tops(const py::array& events, const py::object& record_at, Apply&& apply,
                           const char* dtype_name = "BOOK_EVENT") {
  size_t n = 0;
  const Record* data = record_buffer<Record>(events, dtype_name, n);
  if (record_at.is_none()) {
    py::gil_scoped_release release;
    apply(data, n, nullptr, 0, nullptr);
    return py::none();
  }
  size_t n_record = 0;
  const int64_t* positions = int64_buffer(record_at.cast<py::array>(), "record_at", n_record);
  for (size_t r = 1; r < n_record; ++r) {
    if (positions[r] < positions[r - 1]) throw py::value_error("record_at must be sorted ascending");
  }
  py::array_t<TopOfBook> tops(static_cast<py::ssize_t>(n_record));
  TopOfBook* out = tops.mutable_data();
  {
    py::gil_scoped_release release;
    apply(data, n, positions, n_record, out);
  }
  return std::move(tops);
}

using book::L3Book;
using book::L3BookConfig;
using book::L3BookSet;

L3BookConfig l3_config(uint32_t window_ticks, bool check_crossed, bool allow_nonpositive_prices,
                       uint32_t expected_orders) {
  return L3BookConfig{window_ticks, check_crossed, allow_nonpositive_prices, expected_orders};
}

template <typename Book>
py::object l3_apply(Book& self, const py::array& events, const py::object& record_at) {
  return apply_with_tops<OrderEvent>(
      events, record_at,
      [&self](const OrderEvent* e, size_t n, const int64_t* r, size_t nr, TopOfBook* t) {
        self.apply_batch(e, n, r, nr, t);
      },
      "ORDER_EVENT");
}

template <typename Book>
py::array_t<uint8_t> l3_apply_statuses(Book& self, const py::array& events) {
  size_t n = 0;
  const OrderEvent* data = record_buffer<OrderEvent>(events, "ORDER_EVENT", n);
  py::array_t<uint8_t> statuses(static_cast<py::ssize_t>(n));
  uint8_t* out = statuses.mutable_data();
  {
    py::gil_scoped_release release;
    self.apply_batch_statuses(data, n, out);
  }
  return statuses;
}

void bind_l3_book(py::module_& b) {
  py::class_<L3Book>(b, "L3Book",
                     "L3 (market-by-order) book of one instrument with an owned L2 view (see "
                     "core/book/l3_book.hpp for the semantics and the integrity policy)")
      .def(py::init([](uint32_t window_ticks, bool check_crossed, bool allow_nonpositive_prices,
                       uint32_t expected_orders) {
             return L3Book(l3_config(window_ticks, check_crossed, allow_nonpositive_prices,
                                     expected_orders));
           }),
           py::arg("window_ticks") = 1u << 17, py::arg("check_crossed") = true,
           py::arg("allow_nonpositive_prices") = false, py::arg("expected_orders") = 1u << 14)
      .def("apply", &l3_apply<L3Book>, py::arg("events"), py::arg("record_at") = py::none(),
           "Apply an ORDER_EVENT array (GIL released). With record_at (sorted int64 event "
           "indices) returns the TOP_OF_BOOK after each of those events.")
      .def("apply_statuses", &l3_apply_statuses<L3Book>, py::arg("events"),
           "Apply an ORDER_EVENT array (GIL released) and return each event's status code "
           "(uint8, an index into STATUS_NAMES).")
      .def_property_readonly("best_bid", &L3Book::best_bid)
      .def_property_readonly("best_ask", &L3Book::best_ask)
      .def_property_readonly("best_bid_qty", &L3Book::best_bid_qty)
      .def_property_readonly("best_ask_qty", &L3Book::best_ask_qty)
      .def_property_readonly("crossed", &L3Book::crossed)
      .def_property_readonly("last_seq", &L3Book::last_seq)
      .def_property_readonly("order_count", &L3Book::order_count)
      .def("__len__", &L3Book::order_count)
      .def("__contains__", [](const L3Book& self, uint64_t id) { return self.order(id).has_value(); })
      .def("top", [](const L3Book& self) {
        const TopOfBook t = self.top();
        return py::make_tuple(t.bid_price, t.bid_qty, t.ask_price, t.ask_qty);
      })
      .def("qty_at", [](const L3Book& self, const std::string& side, int64_t price) {
        return self.qty_at(parse_side(side), price);
      }, py::arg("side"), py::arg("price"))
      .def("level_count", [](const L3Book& self, const std::string& side) {
        return self.level_count(parse_side(side));
      }, py::arg("side"))
      .def(
          "l2_depth",
          [](const L3Book& self, const std::string& side, size_t n) {
            std::vector<int64_t> buffer(2 * n);
            const size_t levels = self.l2().depth(parse_side(side), n, buffer.data());
            py::array_t<int64_t> out({static_cast<py::ssize_t>(levels), py::ssize_t{2}});
            std::copy(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(2 * levels),
                      out.mutable_data());
            return out;
          },
          py::arg("side"), py::arg("n"),
          "Top-n aggregated (price, qty) levels from the touch outward, as a fresh (k, 2) int64 "
          "array (k <= n).")
      .def(
          "order",
          [](const L3Book& self, uint64_t id) -> py::object {
            const auto o = self.order(id);
            if (!o) return py::none();
            return py::make_tuple(o->side, o->price, o->qty);
          },
          py::arg("order_id"), "(side, price, qty) of a resting order, or None.")
      .def(
          "queue_ahead",
          [](const L3Book& self, uint64_t id) -> py::object {
            const int64_t ahead = self.queue_ahead(id);
            if (ahead < 0) return py::none();
            return py::int_(ahead);
          },
          py::arg("order_id"),
          "Total qty of the orders ahead of order_id at its level (FIFO), or None if it is not "
          "resting.")
      .def(
          "level_orders",
          [](const L3Book& self, const std::string& side, int64_t price) {
            py::list out;
            for (const auto& o : self.level_orders(parse_side(side), price))
              out.append(py::make_tuple(o.id, o.qty));
            return out;
          },
          py::arg("side"), py::arg("price"),
          "[(order_id, qty), ...] at one level, front of the queue first.")
      .def("counters", [](const L3Book& self) { return counters_dict(self.counters()); })
      .def("reset_counters", &L3Book::reset_counters)
      .def("clear", &L3Book::clear);

  py::class_<L3BookSet>(b, "L3BookSet", "L3 books of several instruments, one per instrument id")
      .def(py::init<>())
      .def(
          "add",
          [](L3BookSet& self, uint32_t id, uint32_t window_ticks, bool check_crossed,
             bool allow_nonpositive_prices, uint32_t expected_orders) -> L3Book& {
            return self.add(id, l3_config(window_ticks, check_crossed, allow_nonpositive_prices,
                                          expected_orders));
          },
          py::arg("instrument"), py::arg("window_ticks") = 1u << 17, py::arg("check_crossed") = true,
          py::arg("allow_nonpositive_prices") = false, py::arg("expected_orders") = 1u << 14,
          py::return_value_policy::reference_internal)
      .def(
          "book",
          [](L3BookSet& self, uint32_t id) -> L3Book& {
            L3Book* book = self.find(id);
            if (book == nullptr) throw py::key_error("no book for instrument " + std::to_string(id));
            return *book;
          },
          py::arg("instrument"), py::return_value_policy::reference_internal)
      .def_property_readonly("instruments", &L3BookSet::instruments)
      .def("apply", &l3_apply<L3BookSet>, py::arg("events"), py::arg("record_at") = py::none(),
           "Apply an ORDER_EVENT array (GIL released); recorded tops are those of the recorded "
           "event's instrument.")
      .def("apply_statuses", &l3_apply_statuses<L3BookSet>, py::arg("events"))
      .def("counters", [](const L3BookSet& self) { return counters_dict(self.counters()); })
      .def("reset_counters", &L3BookSet::reset_counters);
}

}  // namespace

void bind_book(py::module_& m) {
  auto b = m.def_submodule("book", "Order books in integer ticks and lots");

  py::enum_<Side>(b, "Side").value("BID", Side::Bid).value("ASK", Side::Ask).value("NONE", Side::None);

  py::list names;
  for (auto name : book::kBookStatusNames) names.append(std::string(name));
  b.attr("STATUS_NAMES") = names;

  py::class_<L2Book>(b, "L2Book", "L2 book of one instrument (see core/book/l2_book.hpp for the integrity policy)")
      .def(py::init([](uint32_t window_ticks, bool prune_crossed, bool allow_nonpositive_prices) {
             return L2Book(L2BookConfig{window_ticks, prune_crossed, allow_nonpositive_prices});
           }),
           py::arg("window_ticks") = 1u << 17, py::arg("prune_crossed") = true,
           py::arg("allow_nonpositive_prices") = false)
      .def(
          "apply",
          [](L2Book& self, const py::array& events, const py::object& record_at) {
            return apply_with_tops(events, record_at,
                                   [&self](const BookEvent* e, size_t n, const int64_t* r,
                                           size_t nr, TopOfBook* t) { self.apply_batch(e, n, r, nr, t); });
          },
          py::arg("events"), py::arg("record_at") = py::none(),
          "Apply a BOOK_EVENT array (GIL released). With record_at (sorted int64 event indices) "
          "returns the TOP_OF_BOOK after each of those events.")
      .def_property_readonly("best_bid", &L2Book::best_bid)
      .def_property_readonly("best_ask", &L2Book::best_ask)
      .def_property_readonly("best_bid_qty", &L2Book::best_bid_qty)
      .def_property_readonly("best_ask_qty", &L2Book::best_ask_qty)
      .def_property_readonly("crossed", &L2Book::crossed)
      .def_property_readonly("last_seq", &L2Book::last_seq)
      .def("top", [](const L2Book& self) {
        const TopOfBook t = self.top();
        return py::make_tuple(t.bid_price, t.bid_qty, t.ask_price, t.ask_qty);
      })
      .def("qty_at", [](const L2Book& self, const std::string& side, int64_t price) {
        return self.qty_at(parse_side(side), price);
      }, py::arg("side"), py::arg("price"))
      .def("level_count", [](const L2Book& self, const std::string& side) {
        return self.level_count(parse_side(side));
      }, py::arg("side"))
      .def(
          "depth",
          [](py::object self_obj, const std::string& side, size_t n) {
            L2Book& self = self_obj.cast<L2Book&>();
            size_t levels = 0;
            const int64_t* data = self.depth_view(parse_side(side), n, levels);
            py::array_t<int64_t> view({static_cast<py::ssize_t>(levels), py::ssize_t{2}},
                                      {py::ssize_t{16}, py::ssize_t{8}}, data, self_obj);
            py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return view;
          },
          py::arg("side"), py::arg("n"),
          "Top-n (price, qty) levels from the touch outward: a read-only view into a buffer the "
          "book owns, overwritten by the next depth() call for that side.")
      .def("counters", [](const L2Book& self) { return counters_dict(self.counters()); })
      .def("reset_counters", &L2Book::reset_counters)
      .def("clear", &L2Book::clear);

  py::class_<BookSet>(b, "BookSet", "L2 books of several instruments, one per instrument id")
      .def(py::init<>())
      .def(
          "add",
          [](BookSet& self, uint32_t id, uint32_t window_ticks, bool prune_crossed,
             bool allow_nonpositive_prices) -> L2Book& {
            return self.add(id, L2BookConfig{window_ticks, prune_crossed, allow_nonpositive_prices});
          },
          py::arg("instrument"), py::arg("window_ticks") = 1u << 17, py::arg("prune_crossed") = true,
          py::arg("allow_nonpositive_prices") = false, py::return_value_policy::reference_internal)
      .def(
          "book",
          [](BookSet& self, uint32_t id) -> L2Book& {
            L2Book* book = self.find(id);
            if (book == nullptr) throw py::key_error("no book for instrument " + std::to_string(id));
            return *book;
          },
          py::arg("instrument"), py::return_value_policy::reference_internal)
      .def_property_readonly("instruments", &BookSet::instruments)
      .def(
          "apply",
          [](BookSet& self, const py::array& events, const py::object& record_at) {
            return apply_with_tops(events, record_at,
                                   [&self](const BookEvent* e, size_t n, const int64_t* r,
                                           size_t nr, TopOfBook* t) { self.apply_batch(e, n, r, nr, t); });
          },
          py::arg("events"), py::arg("record_at") = py::none())
      .def(
          "apply_timed",
          [](BookSet& self, const py::array& events) {
            size_t n = 0;
            const BookEvent* data = record_buffer<BookEvent>(events, "BOOK_EVENT", n);
            size_t messages = 0;
            for (size_t i = 0; i < n; ++i) messages += (data[i].flags & event_flag::kLast) ? 1 : 0;
            py::array_t<int64_t> latency(static_cast<py::ssize_t>(messages));
            size_t timed = 0;
            {
              py::gil_scoped_release release;
              timed = self.apply_batch_timed(data, n, latency.mutable_data());
            }
            if (timed != messages) latency.resize({static_cast<py::ssize_t>(timed)}, false);
            return latency;
          },
          py::arg("events"), "Apply and return the per-message latency in ns (int64 array).")
      .def("counters", [](const BookSet& self) { return counters_dict(self.counters()); })
      .def("reset_counters", &BookSet::reset_counters);

  bind_l3_book(b);
}

}  // namespace bot4::ext
