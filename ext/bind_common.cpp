// Record dtypes as the C++ compiler lays them out; python/bot4/events.py checks its declared
// dtypes against these at import.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "common/events.hpp"
#include "execution/venue.hpp"

namespace py = pybind11;

namespace bot4::ext {

void bind_common(py::module_& m) {
  // Registered at import, before any other binding asks for these dtypes.
  PYBIND11_NUMPY_DTYPE(BookEvent, ts_exchange, ts_local, seq, price, qty, instrument, side,
                       flags, reserved);
  PYBIND11_NUMPY_DTYPE(OrderEvent, ts_exchange, ts_local, seq, order_id, price, qty,
                       instrument, side, action, flags, reserved);
  PYBIND11_NUMPY_DTYPE(TradeEvent, ts_exchange, ts_local, seq, price, qty, instrument, aggressor,
                       flags, reserved);
  PYBIND11_NUMPY_DTYPE(BboEvent, ts_exchange, ts_local, seq, bid_price, bid_qty, ask_price,
                       ask_qty, instrument, flags, reserved0, reserved1);
  PYBIND11_NUMPY_DTYPE(TopOfBook, bid_price, bid_qty, ask_price, ask_qty);
  PYBIND11_NUMPY_DTYPE(execution::VenueRequestRecord, sent_local, clock_offset, id, price, qty, instrument, kind,
                       side, type, reduce_only);
  PYBIND11_NUMPY_DTYPE(execution::VenueResponseRecord, venue_ts, local_ts, id, price, qty, fee, instrument, kind,
                       side, maker, reserved);

  py::dict dtypes;
  dtypes["BookEvent"] = py::dtype::of<BookEvent>();
  dtypes["OrderEvent"] = py::dtype::of<OrderEvent>();
  dtypes["TradeEvent"] = py::dtype::of<TradeEvent>();
  dtypes["BboEvent"] = py::dtype::of<BboEvent>();
  dtypes["TopOfBook"] = py::dtype::of<TopOfBook>();
  dtypes["VenueRequest"] = py::dtype::of<execution::VenueRequestRecord>();
  dtypes["VenueResponse"] = py::dtype::of<execution::VenueResponseRecord>();
  m.attr("record_dtypes") = dtypes;

  py::dict flags;
  flags["LAST"] = event_flag::kLast;
  flags["SNAPSHOT"] = event_flag::kSnapshot;
  flags["CLEAR"] = event_flag::kClear;
  flags["RESYNC"] = event_flag::kResync;
  m.attr("event_flags") = flags;
  m.attr("NO_BID_PRICE") = kNoBidPrice;
  m.attr("NO_ASK_PRICE") = kNoAskPrice;
}

}  // namespace bot4::ext
